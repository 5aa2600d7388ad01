-- title: Error and failure spikes
-- description: Per destination and time bucket, the share of requests that failed (5xx, a
--   failure response flag such as UF, URX, UH, UO, NR, UT, or a connection ztunnel logged with an
--   error other than a policy's: refused, timed out) against that destination's own
--   baseline share, not a global constant. DC (Envoy's DownstreamConnectionTermination: the client
--   closed its connection before the response, code 0) is not a failure by default: the client hung
--   up, the destination did not fail (a slow destination shows in latency_outlier). Given in
--   -p failure_flags, it counts, and the advice says which failures were only the client's. The worst bucket of each destination is reported: the
--   most severe (critical: >= 90% of >= 50 requests failed, in one bucket; high: >= 50%), then
--   the highest share, the most requests, the earliest. The severity and the evidence (but
--   spiking_buckets, response_flags and ztunnel's errors, up to 5, over all the spiking buckets) are that one bucket's; its
--   source, the clients whose requests failed in it (who is affected). With DF
--   (DNS resolution failed) among the failed requests' flags and among failure_flags, the advice adds
--   DNS advice (dns_failure_advice.sql), and is that alone when every failure of the worst bucket is
--   DF (the name did not resolve: the provider's status and ServiceEntry changes are no lead);
--   -p failure_flags without DF leaves it out, as it leaves out the hang-up advice without DC.
--   A failure is is_failure.sql's (the HTML report's error-share chart counts the same), over the
--   egress that is not blocked (a blocked attempt is blocked_attempt's finding).
-- @param since '' window start (ISO time); empty = 24 hours before the last egress request (the last record where none is egress)
-- @param until '' window end (ISO time, exclusive); empty = after the last record (of any kind, not only the last egress request)
-- @param baseline_start '' baseline start (ISO time); empty = the first egress request (the first record where none is egress)
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param bucket_minutes 60 length of a time bucket in minutes
-- @param min_requests 10 fewest requests in a bucket for it to count
-- @param min_error_share 0.2 lowest failed share of a bucket for a finding
-- @param spike_factor 3.0 how many times its baseline share a bucket must reach
-- @param failure_flags 'UF,URX,UH,UO,NR,UT,UC,LR,UR,DF' response flags that count as failures
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
win AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1),
marked AS (
    SELECT destination, source_workload, source_ip, start_time, request_id, response_code, response_flags, error,
        is_failure(response_code, response_flags, $failure_flags, error) AS failed
    FROM win
    WHERE egress_kind <> 'blocked'
),
base_share AS (
    SELECT destination, count(*) AS base_requests,
        avg(CASE WHEN is_failure(response_code, response_flags, $failure_flags, error) THEN 1.0 ELSE 0.0 END) AS base_share
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
        list_distinct(list(error) FILTER (WHERE failed AND error IS NOT NULL)) AS errors,
        -- (the earliest, then the least id: min_by keeps the first three of its key as it reads, not sorting every row)
        min_by(request_id, (start_time, request_id), 3) FILTER (WHERE failed AND request_id IS NOT NULL) AS ids,
        count(*) FILTER (WHERE failed AND dns_failed(response_flags)) AS dns_failures,
        -- who is affected: the clients whose requests failed (one unknown client where the format logs none)
        string_agg(DISTINCT client_named(source_workload, source_ip), ',' ORDER BY client_named(source_workload, source_ip)) FILTER (WHERE failed) AS failing_sources,
        -- failures that are failures only by DC (or ztunnel's client disconnect, ztunnel_failed): the
        -- client hung up
        count(*) FILTER (WHERE failed AND NOT is_failure(response_code, list_filter(response_flags, lambda f: f <> 'DC'),
            array_to_string(list_filter(string_split($failure_flags, ','), lambda f: trim(f) <> 'DC'), ','),
            error)) AS hangups
    FROM marked
    GROUP BY ALL
),
spikes AS (
    SELECT k.*, coalesce(s.base_share, 0) AS base_share, coalesce(s.base_requests, 0) AS base_requests
    FROM buckets k LEFT JOIN base_share s USING (destination)
    WHERE k.requests >= CAST($min_requests AS INTEGER)
      AND k.share >= CAST($min_error_share AS DOUBLE)
      AND k.share >= CAST($spike_factor AS DOUBLE) * coalesce(s.base_share, 0)
),
ranked AS (
    SELECT *,
        CASE WHEN share >= 0.9 AND requests >= 50 THEN 3 WHEN share >= 0.5 THEN 2 ELSE 1 END AS level
    FROM spikes
),
worst AS (
    SELECT destination,
        arg_max(k, {'level': level, 'share': share, 'requests': requests, 'earliest': -epoch_us(bucket)}) AS w,
        count(*) AS spiking_buckets,
        list_sort(list_distinct(flatten(list(flags)))) AS flags,
        list_sort(list_distinct(flatten(list(errors)))) AS errors
    FROM ranked k
    GROUP BY destination
)
SELECT
    'error_spike' AS kind,
    ['medium', 'high', 'critical'][w.level] AS severity,
    w.failing_sources AS source,
    destination,
    {
        'worst_bucket': w.bucket,
        'bucket_minutes': CAST($bucket_minutes AS INTEGER),
        'requests': w.requests,
        'failures': w.failures,
        'failed_share': round(w.share, 4),
        'baseline_share': round(w.base_share, 4),
        'baseline_requests': w.base_requests,
        'spiking_buckets': spiking_buckets,
        'response_flags': flags,
        'errors': errors[1:5],
        'sample_request_ids': w.ids
    } AS evidence,
    CASE WHEN w.hangups = w.failures AND w.failures > 0  -- (-p min_error_share 0 lets a bucket of none through)
        THEN 'Clients hung up on ' || destination || ' (DC: the client closed its connection before the response) in '
            || CAST(round(100 * w.share) AS INTEGER) || '% of requests, from a baseline of '
            || CAST(round(100 * w.base_share, 1) AS VARCHAR) || '%: the destination did not fail; compare these '
            || 'requests'' duration with the clients'' timeouts (a slow destination also shows in latency_outlier).'
        -- (every failure a DNS failure: the name did not resolve, so the provider's status, the connect
        -- flags and a ServiceEntry change are no lead; DF counted as a failure, as below)
        WHEN w.dns_failures = w.failures AND w.failures > 0 AND has_failure_flag(['DF'], $failure_flags)
        THEN 'Failures to ' || destination || ' rose to ' || CAST(round(100 * w.share) AS INTEGER) || '% from a baseline of '
            || CAST(round(100 * w.base_share, 1) AS VARCHAR) || '%. ' || dns_failure_advice(destination)
        ELSE 'Failures to ' || destination || ' rose to ' || CAST(round(100 * w.share) AS INTEGER) || '% from a baseline of '
            || CAST(round(100 * w.base_share, 1) AS VARCHAR) || '%: check the provider''s status, '
            || 'the flags (UF/URX connect failures, UH no healthy endpoint, UO circuit breaker, UT timeouts, NR no route) '
            || 'and recent DestinationRule/ServiceEntry/VirtualService changes.'
            -- (ztunnel's failed connections carry no flag: its error says what failed)
            || CASE WHEN len(errors) > 0 THEN ' ztunnel logged ' || CASE WHEN len(errors) > 1 THEN 'e.g. ' ELSE '' END
                    || '"' || errors[1] || '" (evidence.errors).' ELSE '' END
            -- (DF counted as a failure by failure_flags, as DC's advice needs DC there: given without
            -- it, a 503 DF still fails as a 5xx, but its DNS is no failure of the operator's)
            || CASE WHEN list_contains(flags, 'DF') AND has_failure_flag(['DF'], $failure_flags)
                    THEN ' ' || dns_failure_advice(destination) ELSE '' END
            || CASE WHEN w.hangups > 0 THEN ' ' || w.hangups || ' of the ' || w.failures || ' failures are only DC: '
                    || 'there the client hung up, not the provider (check the clients'' timeouts).' ELSE '' END
    END AS advice
FROM worst
ORDER BY w.level DESC, w.share DESC, destination
