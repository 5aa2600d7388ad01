-- title: Volume outliers (uploads)
-- description: Unusually large uploads per source and destination: bytes_received is what the
--   client sent, i.e. data leaving the mesh, a data-exfiltration signal. Compared with the pair's
--   (else the destination's) baseline per-request p99 and daily upload (its bytes over the baseline's
--   days, first to last record). The pair's baseline is its client's workload's (client_workload.sql):
--   a Deployment's new pod, a CronJob's next run, uploads as its workload did.
-- @param since '' window start (ISO time); empty = 24 hours before the last egress request (the last record where none is egress)
-- @param until '' window end (ISO time, exclusive); empty = after the last egress request (the last record where none is egress)
-- @param baseline_start '' baseline start (ISO time); empty = the first egress request (the first record where none is egress)
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param min_bytes 10000000 smallest window upload (bytes) of a pair worth a finding
-- @param volume_factor 10.0 how many times its baseline daily upload a pair must reach
-- @param high_bytes 100000000 window upload (bytes) of a pair that makes it high
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
win AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1),
-- The baseline's days, its first to its last record (at least one), that its daily uploads average
-- over: a pair's own first-to-last span made a pair seen on two days of seven a two-day average.
base_days AS (SELECT greatest(date_diff('second', min(start_time), max(start_time)) / 86400.0, 1.0) AS days FROM base),
-- (by workload: a nightly CronJob's run is a new pod each night, so its pair had no baseline, and the
-- destination's per source was spread over every night's pod: 50 MB a night flagged on day 15)
base_pair AS (
    SELECT client_named(source_owner, source_ip) AS client, destination,
        sum(bytes_received) / any_value(days) AS daily
    FROM base, base_days WHERE egress_kind <> 'blocked'
    GROUP BY ALL
),
base_dest AS (
    SELECT destination, quantile_cont(bytes_received, 0.99) AS p99,
        sum(bytes_received) / any_value(days)
            / greatest(count(DISTINCT client_named(source_owner, source_ip)), 1) AS daily_per_source
    FROM base, base_days WHERE egress_kind <> 'blocked'
    GROUP BY destination
),
win_pair AS (
    SELECT client_named(source_workload, source_ip) AS client, client_named(source_owner, source_ip) AS owner,
        destination, client_ips(source_ip) AS source_ips,
        count(*) AS requests,
        sum(bytes_received) AS bytes_up,
        max(bytes_received) AS largest,
        sum(bytes_received) / greatest(date_diff('second', min(start_time), max(start_time)) / 86400.0, 1.0) AS daily,
        min(start_time) AS first_seen, max(start_time) AS last_seen,
        -- (the largest uploads, then the earliest: min_by keeps the first three of its key as it reads, where
        -- list(… ORDER BY …)[1:3] sorted every row, 1M rows' section 0.89 → 0.12 s of CPU; a null upload last, as then)
        min_by(request_id, (-bytes_received, start_time, request_id), 3) FILTER (WHERE request_id IS NOT NULL) AS ids
    FROM win WHERE egress_kind <> 'blocked'
    GROUP BY ALL
)
SELECT
    'volume_outlier' AS kind,
    CASE WHEN w.bytes_up >= CAST($high_bytes AS BIGINT) THEN 'high' ELSE 'medium' END AS severity,
    w.client AS source,
    w.destination,
    {
        'bytes_up': CAST(w.bytes_up AS BIGINT),
        'requests': w.requests,
        'largest_request_bytes': w.largest,
        'baseline_daily_bytes': CAST(coalesce(bp.daily, bd.daily_per_source, 0) AS BIGINT),
        'baseline_request_p99_bytes': CAST(bd.p99 AS BIGINT),
        'first_seen': evidence_time(w.first_seen),
        'last_seen': evidence_time(w.last_seen),
        'sample_request_ids': w.ids
    } AS evidence,
    w.client || ' uploaded ' || CAST(round(w.bytes_up / 1e6, 1) AS VARCHAR) || ' MB to ' || w.destination
        || ': confirm this transfer is expected (backup, export); if not, isolate the pod and '
        || 'check what it sent (request ids in the evidence).' AS advice,
    w.source_ips
FROM win_pair w
LEFT JOIN base_pair bp ON bp.client = w.owner AND bp.destination = w.destination
LEFT JOIN base_dest bd ON bd.destination = w.destination
WHERE w.bytes_up >= CAST($min_bytes AS BIGINT)
  AND w.daily >= CAST($volume_factor AS DOUBLE) * coalesce(bp.daily, bd.daily_per_source, 0)
ORDER BY w.bytes_up DESC, w.destination, source
