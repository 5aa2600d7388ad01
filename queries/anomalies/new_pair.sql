-- title: New source to destination pairs
-- description: A source calling a known external destination it never called in the baseline
--   (destinations new to everyone are reported as new_destination instead). As there, a blocked
--   attempt, or one the proxy made no upstream connection for (upstream_not_connected.sql), reached
--   nothing: a destination the baseline only tried so is no known one, and a source that only tried
--   it so then is calling it for the first time when it reaches it (tried again so, it is no news).
--   A client is known by its workload (client_workload.sql): a Deployment's new pods after a deploy,
--   a CronJob's next run, call what their workload called, and are no new pair.
--   A request an authorization policy refused (authz_denied.sql: an RBAC 403, ext_authz's UAEX,
--   ztunnel's policy rejection: the denials view's rows) is authz_denial's finding, not this one's, as
--   a blocked attempt is blocked_attempt's: one event, one finding (a pair whose window requests were
--   all denied was a low new_pair beside a high authz_denial of the same calls).
--   A pair that received upload_high bytes or more in the window (its bytes_received, of the requests
--   the proxy sent on) is high, as a new destination is: a workload that never called a known host
--   uploading there (a shared one, a storage bucket's, can hold anyone's bucket) is how exfiltration
--   looks; else medium when reached unregistered (passthrough), else low. Its upload is this finding's
--   alone, as a new destination's is new_destination's: volume_outlier judges only the pairs the
--   baseline reached (base_pairs' reached, below), one upload, one finding (a new pair's 50 MB was a
--   high new_pair and a medium volume_outlier against its destination's upload per workload).
-- @param since '' window start (ISO time); empty = 24 hours before the last egress request (the last record where none is egress)
-- @param until '' window end (ISO time, exclusive); empty = after the last record (of any kind, not only the last egress request)
-- @param baseline_start '' baseline start (ISO time); empty = the first egress request (the first record where none is egress)
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param min_requests 1 fewest window requests for a finding (not of one that uploaded upload_high or more)
-- @param upload_high 1000000 bytes the pair uploaded in the window (bytes_received) that make it high
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
-- (not a refused request: authz_denial's)
-- (MATERIALIZED: the window's rows first; else DuckDB joined every egress row of the data to the
-- baseline's, a hash table of all of them, and cut the window after the join, so memory grew with
-- the data, not the window:
-- `logpipe query new_pair` of 5M rows over 7 days:
-- 989 → 482 MB peak RSS, 806 → 232 MB DuckDB buffers, 10.0 → 8.0 s CPU)
win AS MATERIALIZED (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1
        AND NOT authz_denied(e.response_code_details, e.connection_termination_details, e.response_flags, e.error)),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1),
-- (the baseline's pairs once each: EXISTS over every baseline row built a hash table of them all,
-- 0.45 GB of 10M rows), not blocked, and whether each reached it: connected to it once; by workload
-- (ztunnel names a pod: each deploy's pods were new pairs of every destination, 5 findings a day of
-- tests/test_anomaly_quality.py's quiet traffic)
base_pairs AS (
    SELECT destination, client_named(source_owner, source_ip) AS client,
        bool_or(upstream_connected) AS reached
    FROM base WHERE egress_kind <> 'blocked'
    GROUP BY ALL
)
SELECT
    'new_pair' AS kind,
    CASE
        -- (bytes of a request the proxy made no upstream connection for never left)
        WHEN sum(w.bytes_received) FILTER (WHERE w.upstream_connected) >= CAST($upload_high AS BIGINT) THEN 'high'
        WHEN bool_or(w.egress_kind = 'passthrough') THEN 'medium'
        ELSE 'low'
    END AS severity,
    client_named(w.source_workload, w.source_ip) AS source,
    w.destination,
    {
        'requests': count(*),
        'ports': list_sort(list(DISTINCT w.destination_port)),
        'egress_kind': string_agg(DISTINCT w.egress_kind, ',' ORDER BY w.egress_kind),
        'bytes_up': CAST(sum(w.bytes_received) AS BIGINT),  -- null: the format logs no bytes
        'first_seen': evidence_time(min(w.start_time)),
        'last_seen': evidence_time(max(w.start_time)),
        -- (the earliest, then the least id: min_by keeps the first three of its key as it reads, not sorting every row)
        'sample_request_ids': min_by(w.request_id, (w.start_time, w.request_id), 3) FILTER (WHERE w.request_id IS NOT NULL)
    } AS evidence,
    'This workload started calling ' || w.destination || ': check it is a planned change '
        || '(new release, new feature) and not a compromised or misconfigured pod.'
        || CASE WHEN sum(w.bytes_received) FILTER (WHERE w.upstream_connected) >= CAST($upload_high AS BIGINT)
                THEN ' It sent ' || CAST(round(sum(w.bytes_received) FILTER (WHERE w.upstream_connected) / 1e6, 1) AS VARCHAR)
                     || ' MB there: find out what was sent (the request ids lead to the application logs).'
                ELSE '' END AS advice,
    client_ips(w.source_ip) AS source_ips
FROM win w
-- (by the client as the finding names it: a workload of several pods' IPs is one; a format that logs no
-- client, Envoy's default, leaves source_ip null: the same unknown client)
LEFT JOIN base_pairs p ON p.destination = w.destination AND p.client = client_named(w.source_owner, w.source_ip)
WHERE w.egress_kind <> 'blocked'
  AND EXISTS (SELECT 1 FROM base_pairs b WHERE b.destination = w.destination AND b.reached)
  AND p.reached IS NOT TRUE
GROUP BY client_named(w.source_workload, w.source_ip), w.destination
-- (fewer requests than min_requests are a finding still when they uploaded upload_high or more:
-- volume_outlier leaves such an upload to this finding, so min_requests must not drop it)
HAVING (count(*) >= CAST($min_requests AS INTEGER)
        OR sum(w.bytes_received) FILTER (WHERE w.upstream_connected) >= CAST($upload_high AS BIGINT))
    -- (a pair the baseline only tried without connecting: new once it connects, no news when tried again so)
    AND (count(p.destination) = 0 OR bool_or(w.upstream_connected))
ORDER BY count(*) DESC, w.destination, source
