-- title: ServiceEntries for REGISTRY_ONLY
-- description: The ServiceEntry of each destination registry_only lists (one YAML document a
--   destination, with a port for each port it was reached on, the most requested first), to write as one file to review and kubectl apply -f before switching
--   outboundTrafficPolicy to REGISTRY_ONLY: `logpipe query service_entries --out service-entries.yaml`
--   (YAML on a terminal and into a pipe too, its `output:`; -o ndjson for its rows). A destination
--   without one (a name that is no DNS name; every request failed DNS resolution) is left out:
--   registry_only shows it, its service_entry null. Review each before applying: an internal
--   address's carries a comment saying when it is the wrong fix, and a host's with a TCP port lists
--   the IP it was reached at as its address, or, reached at several or on other ports too, is a
--   document per IP under a made-up host (Istio uses one address of a host: service_entry_yaml_ports.sql says why).
-- output: yaml
-- @param since '' window start (ISO time); empty = the data's first record
-- @param until '' window end (ISO time, exclusive); empty = after the last record
-- (one document per destination, every port of it: passthrough_destinations.sql)
SELECT any_value(service_entry) AS service_entry
FROM passthrough_destinations($since, $until)
WHERE service_entry IS NOT NULL
GROUP BY destination
ORDER BY sum(requests) DESC, destination
