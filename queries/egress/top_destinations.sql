-- title: Top external destinations
-- description: Hosts (or IPs) outside the mesh by requests, with how they leave (egress_kind),
--   bytes each way (null: the format logs no bytes), error share (4xx, 5xx, failure response flags
--   and ztunnel's policy rejections and failed connections, as the inventory counts it: is_error.sql) and how many clients
--   call them (source_count, a client not in the logs too: client_named.sql).
-- @column kinds the ways its requests left the mesh, each an egress_kind (comma-separated when more
--   than one): waypoint (an ambient egress waypoint), registered (a ServiceEntry), passthrough (no
--   ServiceEntry: PassthroughCluster under ALLOW_ANY), blocked (BlackHoleCluster or route block_all
--   under REGISTRY_ONLY: nothing left), public_ip (no cluster says which: a public upstream address);
--   `logpipe query destinations --list` says more of each
-- @param limit 20 rows to show
-- @param kind '' only this egress_kind (waypoint, registered, passthrough, blocked, public_ip); empty = all
-- @param failure_flags 'UF,URX,UH,UO,NR,UT,UC,LR,UR,DF' response flags that count as errors
SELECT
    destination,
    string_agg(DISTINCT egress_kind, ',' ORDER BY egress_kind) AS kinds,
    count(*) AS requests,
    count(DISTINCT client_named(source_workload, source_ip)) AS source_count,
    sum(bytes_received) AS bytes_up,
    sum(bytes_sent) AS bytes_down,
    round(avg(CASE WHEN is_error(response_code, response_flags, $failure_flags, connection_termination_details, error) THEN 1.0 ELSE 0.0 END), 3) AS error_share
FROM egress
WHERE $kind = '' OR egress_kind = $kind
GROUP BY destination
ORDER BY requests DESC, destination
LIMIT $limit
