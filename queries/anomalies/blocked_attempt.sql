-- title: Blocked egress attempts
-- description: Connections refused by REGISTRY_ONLY (BlackHoleCluster, the block_all route, to an
--   address that is not internal: the egress view's blocked rows; or no route to a public address:
--   a 404 NR of Istio before 1.3; or a CONNECT the proxy refused: blocked_by.sql says why), by source
--   and destination. A blocked row an authorization policy refused (a CONNECT RBAC or ext_authz
--   refused: authz_denied.sql) is authz_denial's finding alone, one event, one finding. Many attempts from one source that the baseline did not show look like
--   a probe, a misconfiguration after a release, or malware calling home. Low when the baseline
--   shows the same destination blocked for the same client, known by its workload as new_pair knows
--   it (client_workload.sql): a CronJob's next run (--pods names its Job, `ops/backup-29078747`),
--   a Deployment's pods after a deploy (as ztunnel names them) repeat what their workload tried, and
--   were medium or high again each run.
-- @param since '' window start (ISO time); empty = 24 hours before the last egress request (the last record where none is egress)
-- @param until '' window end (ISO time, exclusive); empty = after the last record (of any kind, not only the last egress request)
-- @param baseline_start '' baseline start (ISO time); empty = the first egress request (the first record where none is egress)
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param blocked_high 20 window attempts by one source to one destination that make it high
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
win AS (SELECT e.*, blocked_by(e.upstream_cluster, e.route_name, e.method, e.response_code, e.response_code_details,
                                e.response_flags) AS blocked_by
        FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1),
-- (the baseline's blocked pairs once each, by workload)
base_blocked AS (
    SELECT DISTINCT client_named(source_owner, source_ip) AS client, destination
    FROM base WHERE egress_kind = 'blocked'
      AND NOT authz_denied(response_code_details, connection_termination_details, response_flags, error)
)
SELECT
    'blocked_attempt' AS kind,
    CASE
        WHEN EXISTS (SELECT 1 FROM base_blocked b
                     WHERE b.client = client_named(w.source_owner, w.source_ip)
                     AND b.destination IS NOT DISTINCT FROM w.destination) THEN 'low'
        WHEN count(*) >= CAST($blocked_high AS INTEGER) THEN 'high'
        ELSE 'medium'
    END AS severity,
    client_named(w.source_workload, w.source_ip) AS source,
    destination_named(w.destination) AS destination,
    {
        'attempts': count(*),
        'ports': list_sort(list(DISTINCT w.destination_port)),
        'blocked_by': string_agg(DISTINCT w.blocked_by, ',' ORDER BY w.blocked_by),
        'first_seen': evidence_time(min(w.start_time)),
        'last_seen': evidence_time(max(w.start_time)),
        -- (the earliest, then the least id: min_by keeps the first three of its key as it reads, not sorting every row)
        'sample_request_ids': min_by(w.request_id, (w.start_time, w.request_id), 3) FILTER (WHERE w.request_id IS NOT NULL)
    } AS evidence,
    'The mesh blocked these calls. Find out why this workload wants ' || coalesce(w.destination,
        'the address it dialled (the format logs none: add %DOWNSTREAM_LOCAL_ADDRESS% to see it)')
        || ': register the host with a ServiceEntry if it is needed, otherwise treat the pod as suspect.' AS advice,
    client_ips(w.source_ip) AS source_ips
FROM win w
WHERE w.egress_kind = 'blocked'
  AND NOT authz_denied(w.response_code_details, w.connection_termination_details, w.response_flags, w.error)
GROUP BY client_named(w.source_workload, w.source_ip), client_named(w.source_owner, w.source_ip), w.destination
ORDER BY count(*) DESC, w.destination, source
