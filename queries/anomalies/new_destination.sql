-- title: New destinations
-- description: External destinations reached in the window that the baseline never reached.
--   Unregistered (passthrough) or raw-IP newcomers rank higher: nobody reviewed them; one that
--   received an upload of upload_high bytes or more (its bytes_received) ranks high, whatever its
--   kind: data leaving for a host nobody had called before is how exfiltration looks. A destination
--   the baseline only tried and was blocked from was never reached: it is new when it is reached.
--   One whose every window request failed DNS resolution (flag DF) gets DNS advice
--   (dns_failure_advice.sql), not a ServiceEntry.
-- @param since '' window start (ISO time); empty = 24 hours before the data's last record
-- @param until '' window end (ISO time, exclusive); empty = after the last record
-- @param baseline_start '' baseline start (ISO time); empty = the data's first record
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param min_requests 1 fewest window requests for a finding
-- @param upload_high 1000000 bytes uploaded to the newcomer in the window (bytes_received) that make it high
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
win AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1),
-- (the baseline's destinations once each: NOT EXISTS over every baseline row built a hash table of
-- them all)
base_destinations AS (SELECT DISTINCT destination FROM base WHERE egress_kind <> 'blocked')
SELECT
    'new_destination' AS kind,
    CASE
        WHEN (SELECT count(*) FROM base) = 0 THEN 'info'
        WHEN sum(w.bytes_received) >= CAST($upload_high AS BIGINT) THEN 'high'
        WHEN bool_or(w.egress_kind = 'passthrough') THEN 'medium'
        ELSE 'low'
    END AS severity,
    string_agg(DISTINCT client_named(w.source_ip), ',' ORDER BY client_named(w.source_ip)) AS source,
    w.destination,
    {
        'requests': count(*),
        -- (null, not [null], when the format logs no port)
        'ports': nullif(list_sort(list(DISTINCT w.destination_port) FILTER (WHERE w.destination_port IS NOT NULL)), []),
        'egress_kind': string_agg(DISTINCT w.egress_kind, ',' ORDER BY w.egress_kind),
        'bytes_up': CAST(sum(w.bytes_received) AS BIGINT),  -- null: the format logs no bytes
        'first_seen': min(w.start_time),
        'last_seen': max(w.start_time),
        'sample_request_ids': list(w.request_id ORDER BY w.start_time) FILTER (WHERE w.request_id IS NOT NULL)[1:3]
    } AS evidence,
    CASE WHEN bool_and(coalesce(list_contains(w.response_flags, 'DF'), false))
         THEN 'A destination the baseline never saw. ' || dns_failure_advice(w.destination)
         ELSE 'A destination the baseline never saw: confirm the owning team expects it; register it with a '
              || 'ServiceEntry if legitimate, or block it with an AuthorizationPolicy / REGISTRY_ONLY.' END
        || CASE WHEN sum(w.bytes_received) >= CAST($upload_high AS BIGINT)
                THEN ' It received ' || CAST(round(sum(w.bytes_received) / 1e6, 1) AS VARCHAR) || ' MB from '
                     || string_agg(DISTINCT client_named(w.source_ip), ', ' ORDER BY client_named(w.source_ip))
                     || ': find out what was sent (the request ids lead to the application logs).'
                ELSE '' END AS advice
FROM win w
WHERE w.egress_kind <> 'blocked'
  AND NOT EXISTS (SELECT 1 FROM base_destinations b WHERE b.destination = w.destination)
GROUP BY w.destination
HAVING count(*) >= CAST($min_requests AS INTEGER)
ORDER BY count(*) DESC, w.destination
