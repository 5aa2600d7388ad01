-- title: Latency outliers
-- description: HTTP destinations whose p99 duration in the window jumped against their own
--   baseline p99, and single requests far beyond their destination's normal (TCP rows are left
--   out: a connection's duration is its lifetime, not a latency). A jump's advice suggests a
--   DestinationRule, and for a destination some of whose requests left unregistered (passthrough,
--   public_ip) a ServiceEntry first, without which no DestinationRule applies to it. A destination's
--   single requests far beyond normal are one finding: the slowest's duration and time, how many
--   (window_requests) and the slowest three's ids.
-- @param since '' window start (ISO time); empty = 24 hours before the last egress request (the last record where none is egress)
-- @param until '' window end (ISO time, exclusive); empty = after the last record (of any kind, not only the last egress request)
-- @param baseline_start '' baseline start (ISO time); empty = the first egress request (the first record where none is egress)
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param p99_factor 3.0 window p99 over baseline p99 that makes a jump
-- @param min_requests 20 fewest window and baseline requests for a p99 comparison
-- @param min_jump_ms 200 smallest p99 increase in milliseconds worth a finding
-- @param single_factor 10.0 a single request this many times its destination's baseline p99 is an outlier
-- @param single_min_ms 5000 ... and at least this many milliseconds
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
win AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1),
base_p AS (
    SELECT destination, count(*) AS n, quantile_cont(duration, 0.99) AS p99, quantile_cont(duration, 0.5) AS p50
    FROM base WHERE request_protocol(protocol, method, authority) IS NOT NULL AND egress_kind <> 'blocked' AND duration IS NOT NULL
    GROUP BY destination
),
win_p AS (
    SELECT destination, count(*) AS n, quantile_cont(duration, 0.99) AS p99, quantile_cont(duration, 0.5) AS p50,
        string_agg(DISTINCT client_named(source_workload, source_ip), ',' ORDER BY client_named(source_workload, source_ip)) AS sources,
        -- (the slowest, then the earliest: min_by keeps the first three of its key as it reads, not sorting every row)
        min_by(request_id, (-duration, start_time, request_id), 3) FILTER (WHERE request_id IS NOT NULL) AS ids,
        -- (a DestinationRule applies only to a host in the registry: Istio's analyzer IST0174 asks for a
        -- ServiceEntry for a host outside the mesh)
        bool_or(egress_kind IN ('passthrough', 'public_ip')) AS unregistered
    FROM win WHERE request_protocol(protocol, method, authority) IS NOT NULL AND egress_kind <> 'blocked' AND duration IS NOT NULL
    GROUP BY destination
),
jumps AS (
    SELECT
        'latency_outlier' AS kind,
        CASE WHEN w.p99 >= 2 * CAST($p99_factor AS DOUBLE) * b.p99 THEN 'high' ELSE 'medium' END AS severity,
        w.sources AS source,
        w.destination,
        {
            'what': 'p99_jump',
            'window_p99_ms': CAST(w.p99 AS BIGINT), 'baseline_p99_ms': CAST(b.p99 AS BIGINT),
            'window_p50_ms': CAST(w.p50 AS BIGINT), 'baseline_p50_ms': CAST(b.p50 AS BIGINT),
            'window_requests': w.n, 'baseline_requests': b.n,
            'duration_ms': NULL::BIGINT, 'start_time': NULL::TIMESTAMPTZ,
            'sample_request_ids': w.ids
        } AS evidence,
        'p99 latency to ' || w.destination || ' went from ' || CAST(b.p99 AS BIGINT) || ' ms to '
            || CAST(w.p99 AS BIGINT) || ' ms: check the provider''s status and the upstream_service_time '
            || 'column (slow upstream) against duration (slow network or client); consider a timeout '
            || 'and outlier detection in the DestinationRule'
            || CASE WHEN w.unregistered THEN ' (it is not registered: a DestinationRule applies only to a host a '
                    || 'ServiceEntry registers, so register it first)' ELSE '' END || '.' AS advice,
        CAST(NULL AS VARCHAR[]) AS source_ips,  -- (its clients are several: source lists them)
        w.p99 / greatest(b.p99, 1) AS score
    FROM win_p w JOIN base_p b USING (destination)
    WHERE w.n >= CAST($min_requests AS INTEGER) AND b.n >= CAST($min_requests AS INTEGER)
      AND w.p99 >= CAST($p99_factor AS DOUBLE) * b.p99
      AND w.p99 - b.p99 >= CAST($min_jump_ms AS DOUBLE)
),
-- Single requests far beyond their destination's normal, one finding per destination: a provider's
-- slow minutes gave a finding per request (8 requests of 15 s: 8 findings, under the 1% of the
-- window's requests that would move its p99). Its evidence is the slowest request's (the earliest of
-- equal ones); window_requests counts them, sample_request_ids the slowest three.
slow AS (
    SELECT r.*, b.p99 AS base_p99, b.p50 AS base_p50, b.n AS base_n
    FROM win r JOIN base_p b USING (destination)
    WHERE request_protocol(r.protocol, r.method, r.authority) IS NOT NULL AND r.egress_kind <> 'blocked'
      AND b.n >= CAST($min_requests AS INTEGER)
      AND r.duration >= CAST($single_factor AS DOUBLE) * b.p99
      AND r.duration >= CAST($single_min_ms AS BIGINT)
      AND r.destination NOT IN (SELECT destination FROM jumps)
),
singles AS (
    SELECT
        'latency_outlier' AS kind,
        'low' AS severity,
        string_agg(DISTINCT client_named(source_workload, source_ip), ',' ORDER BY client_named(source_workload, source_ip)) AS source,
        destination,
        {
            'what': 'single_request',
            'window_p99_ms': NULL::BIGINT, 'baseline_p99_ms': CAST(any_value(base_p99) AS BIGINT),
            'window_p50_ms': NULL::BIGINT, 'baseline_p50_ms': CAST(any_value(base_p50) AS BIGINT),
            'window_requests': count(*), 'baseline_requests': any_value(base_n),
            'duration_ms': max(duration), 'start_time': evidence_time(min_by(start_time, (-duration, start_time, request_id))),
            -- (the slowest, then the earliest: min_by keeps the first three of its key as it reads)
            'sample_request_ids': min_by(request_id, (-duration, start_time, request_id), 3)
        } AS evidence,
        CASE WHEN count(*) = 1 THEN 'One request to ' || destination || ' took ' || max(duration) || ' ms'
             ELSE count(*) || ' requests to ' || destination || ' took ' || min(duration) || ' to ' || max(duration) || ' ms'
        END || ' against a normal p99 of ' || CAST(any_value(base_p99) AS BIGINT) || ' ms: look '
            || CASE WHEN count(*) = 1 THEN 'it' ELSE 'them' END || ' up by request id in the application logs.' AS advice,
        -- (one client's IPs, as a finding of one client carries them; several clients: source lists them)
        CASE WHEN count(DISTINCT client_named(source_workload, source_ip)) = 1 THEN client_ips(source_ip) END AS source_ips,
        max(duration) / greatest(any_value(base_p99), 1) AS score
    FROM slow
    GROUP BY destination
)
SELECT * EXCLUDE (score) FROM (SELECT * FROM jumps UNION ALL SELECT * FROM singles)
ORDER BY score DESC, destination, evidence.start_time, source, evidence.sample_request_ids
