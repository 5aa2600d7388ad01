-- passthrough_destinations(since, until): every destination the proxies reached through
-- PassthroughCluster or AllowAnyDynamicDNSCluster (outboundTrafficPolicy ALLOW_ANY: no Service or
-- ServiceEntry names it, and REGISTRY_ONLY would block it), per destination and port, from `traffic`
-- (internal addresses included, which `egress` leaves out), between since and until (ISO times; empty:
-- the whole data, rows without a time too). The rows of the named queries registry_only (all of
-- them) and service_entries (the service_entry column as a YAML file).
-- service_entry: the ServiceEntry of the destination, every port of it in the window (one document,
-- or one per destination_ip of a host over TCP reached at several or on other ports too, after its
-- other ports' under its name: service_entry_yaml_ports.sql says
-- why, and when it lists the destination_ip it was reached at as its address), the same on each of its rows. The unregistered_egress finding prints it too, for
-- its window.
CREATE OR REPLACE MACRO passthrough_destinations(since, until) AS TABLE
WITH per_port AS (
SELECT
    destination,
    destination_port AS port,
    most_common(coalesce(request_protocol(protocol, method, authority),
                  connection_protocol(requested_server_name, upstream_cluster_direction,
                                      upstream_cluster_subset, method := method, authority := authority))) AS protocol,
    string_agg(DISTINCT destination_ip_kind, ',' ORDER BY destination_ip_kind) AS address_kind,
    count(*) AS requests,
    CAST(sum(bytes_received) AS BIGINT) AS bytes_up,
    CAST(sum(bytes_sent) AS BIGINT) AS bytes_down,
    min(start_time) AS first_seen,
    max(start_time) AS last_seen,
    -- (a client that is not in the logs counted and listed too: client_named.sql)
    count(DISTINCT client_named(source_workload, source_ip)) AS source_count,
    clients_named(list(DISTINCT client_named(source_workload, source_ip))) AS sources,
    string_agg(DISTINCT requested_server_name, ',' ORDER BY requested_server_name)
        FILTER (WHERE istio_sni_host(requested_server_name) IS NULL) AS sni,
    service_entry_protocol(protocol, method, authority, requested_server_name,
                           upstream_cluster_direction, upstream_cluster_subset) AS se_protocol,
    all_dns_failed(response_flags) AS dns_failed,
    list(DISTINCT destination_ip) FILTER (WHERE destination_ip IS NOT NULL) AS ips
FROM traffic
WHERE upstream_cluster IN ('PassthroughCluster', 'AllowAnyDynamicDNSCluster')
  AND (start_time >= coalesce(CAST(nullif(since, '') AS TIMESTAMPTZ), '-infinity'::TIMESTAMPTZ)
       AND start_time < coalesce(CAST(nullif(until, '') AS TIMESTAMPTZ), 'infinity'::TIMESTAMPTZ)
       -- rows without a time (a format with no %START_TIME%) belong to no window but the whole data's
       OR (start_time IS NULL AND coalesce(since, '') = '' AND coalesce(until, '') = ''))
GROUP BY destination, destination_port
),
by_destination AS (
    SELECT *,
        list({'port': port, 'protocol': se_protocol} ORDER BY port NULLS LAST) OVER (PARTITION BY destination) AS se_ports,
        bool_and(dns_failed) OVER (PARTITION BY destination) AS all_failed,
        flatten(list(ips) OVER (PARTITION BY destination)) AS se_addresses
    FROM per_port
)
SELECT * EXCLUDE (se_protocol, dns_failed, ips, se_ports, all_failed, se_addresses),
    service_entry_yaml_ports(destination, se_ports, all_failed, se_addresses) AS service_entry
FROM by_destination
