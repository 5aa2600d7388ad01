-- title: Error and failure spikes
-- description: Per destination and time bucket, the share of requests that failed (5xx, or a
--   failure response flag such as UF, URX, UH, UO, NR, DC, UT) against that destination's own
--   baseline share, not a global constant. The worst bucket of each destination is reported.
--   A failure is is_failure.sql's (the HTML report's error-share chart counts the same), over the
--   egress that is not blocked (a blocked attempt is blocked_attempt's finding).
-- @param since '' window start (ISO time); empty = 24 hours before the data's last record
-- @param until '' window end (ISO time, exclusive); empty = after the last record
-- @param baseline_start '' baseline start (ISO time); empty = the data's first record
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param bucket_minutes 60 length of a time bucket in minutes
-- @param min_requests 10 fewest requests in a bucket for it to count
-- @param min_error_share 0.2 lowest failed share of a bucket for a finding
-- @param spike_factor 3.0 how many times its baseline share a bucket must reach
-- @param failure_flags 'UF,URX,UH,UO,NR,DC,UT,UC,LR,UR,DF' response flags that count as failures
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
win AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1),
marked AS (
    SELECT destination, start_time, request_id, response_code, response_flags,
        is_failure(response_code, response_flags, $failure_flags) AS failed
    FROM win
    WHERE egress_kind <> 'blocked'
),
base_share AS (
    SELECT destination, count(*) AS base_requests,
        avg(CASE WHEN is_failure(response_code, response_flags, $failure_flags) THEN 1.0 ELSE 0.0 END) AS base_share
    FROM base
    WHERE egress_kind <> 'blocked'
    GROUP BY destination
),
buckets AS (
    SELECT destination,
        time_bucket(to_minutes(CAST($bucket_minutes AS BIGINT)), start_time) AS bucket,
        count(*) AS requests,
        count(*) FILTER (WHERE failed) AS failures,
        avg(CASE WHEN failed THEN 1.0 ELSE 0.0 END) AS share,
        list_distinct(flatten(list(response_flags) FILTER (WHERE failed))) AS flags,
        list(request_id ORDER BY start_time) FILTER (WHERE failed AND request_id IS NOT NULL)[1:3] AS ids
    FROM marked
    GROUP BY ALL
),
spikes AS (
    SELECT k.*, coalesce(s.base_share, 0) AS base_share, coalesce(s.base_requests, 0) AS base_requests
    FROM buckets k LEFT JOIN base_share s USING (destination)
    WHERE k.requests >= CAST($min_requests AS INTEGER)
      AND k.share >= CAST($min_error_share AS DOUBLE)
      AND k.share >= CAST($spike_factor AS DOUBLE) * coalesce(s.base_share, 0)
)
SELECT
    'error_spike' AS kind,
    CASE
        WHEN max(share) >= 0.9 AND max(requests) >= 50 THEN 'critical'
        WHEN max(share) >= 0.5 THEN 'high'
        ELSE 'medium'
    END AS severity,
    NULL AS source,
    destination,
    {
        'worst_bucket': arg_max(bucket, share),
        'bucket_minutes': CAST($bucket_minutes AS INTEGER),
        'requests': arg_max(requests, share),
        'failures': arg_max(failures, share),
        'failed_share': round(max(share), 4),
        'baseline_share': round(any_value(base_share), 4),
        'baseline_requests': any_value(base_requests),
        'spiking_buckets': count(*),
        'response_flags': list_sort(list_distinct(flatten(list(flags)))),
        'sample_request_ids': arg_max(ids, share)
    } AS evidence,
    'Failures to ' || destination || ' rose to ' || CAST(round(100 * max(share)) AS INTEGER) || '% from a baseline of '
        || CAST(round(100 * any_value(base_share), 1) AS VARCHAR) || '%: check the provider''s status, '
        || 'the flags (UF/URX connect failures, UH no healthy endpoint, UO circuit breaker, UT timeouts) '
        || 'and recent DestinationRule/ServiceEntry changes.' AS advice
FROM spikes
GROUP BY destination
ORDER BY max(share) DESC, destination
