-- title: Egress by source
-- description: Which clients (source: its workload where known, else its IP; source_ips: its IPs;
--   proxy_pods: the pods whose logs carried the lines) call which
--   external destinations, how often and how much they send.
-- @column kinds the ways its requests left the mesh, each an egress_kind (comma-separated when more
--   than one): waypoint (an ambient egress waypoint), registered (a ServiceEntry), passthrough (no
--   ServiceEntry: PassthroughCluster under ALLOW_ANY), blocked (BlackHoleCluster or route block_all
--   under REGISTRY_ONLY: nothing left), public_ip (no cluster says which: a public upstream address);
--   `logpipe query destinations --list` says more of each
-- @param destination '' only this destination; empty = all
-- @param limit 50 rows to show
SELECT
    client_named(source_workload, source_ip) AS source,
    client_ips(source_ip) AS source_ips,
    string_agg(DISTINCT pod, ',' ORDER BY pod) AS proxy_pods,  -- pods whose proxy logged the line (kubectl prefix)
    destination,
    destination_port,
    string_agg(DISTINCT egress_kind, ',' ORDER BY egress_kind) AS kinds,
    count(*) AS requests,
    sum(bytes_received) AS bytes_up,  -- null: the format logs no bytes
    evidence_time(min(start_time)) AS first_seen,
    evidence_time(max(start_time)) AS last_seen
FROM egress
WHERE $destination = '' OR destination = $destination
GROUP BY client_named(source_workload, source_ip), destination, destination_port
ORDER BY requests DESC, source, destination, destination_port
LIMIT $limit
