-- title: Egress by source
-- description: Which clients (source IP; proxy_pods: the pods whose logs carried the lines) call which
--   external destinations, how often and how much they send.
-- @param destination '' only this destination; empty = all
-- @param limit 50 rows to show
SELECT
    source_ip,
    string_agg(DISTINCT pod, ',' ORDER BY pod) AS proxy_pods,  -- pods whose proxy logged the line (kubectl prefix)
    destination,
    destination_port,
    string_agg(DISTINCT egress_kind, ',' ORDER BY egress_kind) AS kinds,
    count(*) AS requests,
    sum(bytes_received) AS bytes_up,  -- null: the format logs no bytes
    min(start_time) AS first_seen,
    max(start_time) AS last_seen
FROM egress
WHERE $destination = '' OR destination = $destination
GROUP BY source_ip, destination, destination_port
ORDER BY requests DESC, source_ip, destination
LIMIT $limit
