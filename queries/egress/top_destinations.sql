-- title: Top external destinations
-- description: Hosts (or IPs) outside the mesh by requests, with how they leave (egress_kind),
--   bytes each way (null: the format logs no bytes), error share (4xx, 5xx, failure response flags
--   and ztunnel's policy rejections and failed connections, as the inventory counts it: is_error.sql) and how many clients
--   call them (source_count, a client not in the logs too: client_named.sql).
-- @param limit 20 rows to show
-- @param kind '' only this egress_kind (waypoint, registered, passthrough, blocked, public_ip); empty = all
-- @param failure_flags 'UF,URX,UH,UO,NR,UT,UC,LR,UR,DF' response flags that count as errors
SELECT
    destination,
    string_agg(DISTINCT egress_kind, ',' ORDER BY egress_kind) AS kinds,
    count(*) AS requests,
    count(DISTINCT client_named(source_ip)) AS source_count,
    sum(bytes_received) AS bytes_up,
    sum(bytes_sent) AS bytes_down,
    round(avg(CASE WHEN is_error(response_code, response_flags, $failure_flags, connection_termination_details, error) THEN 1.0 ELSE 0.0 END), 3) AS error_share
FROM egress
WHERE $kind = '' OR egress_kind = $kind
GROUP BY destination
ORDER BY requests DESC, destination
LIMIT $limit
