-- title: New source to destination pairs
-- description: A source calling a known external destination it never called in the baseline
--   (destinations new to everyone are reported as new_destination instead). As there, a blocked
--   attempt reached nothing: a destination the baseline only tried and was blocked from is no known
--   one, and a source blocked from it then is calling it for the first time.
-- @param since '' window start (ISO time); empty = 24 hours before the data's last record
-- @param until '' window end (ISO time, exclusive); empty = after the last record
-- @param baseline_start '' baseline start (ISO time); empty = the data's first record
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param min_requests 1 fewest window requests for a finding
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
win AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1),
-- (the baseline's pairs once each: EXISTS over every baseline row built a hash table of them all,
-- 0.45 GB of 10M rows)
base_pairs AS (SELECT DISTINCT destination, source_ip FROM base WHERE egress_kind <> 'blocked')
SELECT
    'new_pair' AS kind,
    CASE WHEN bool_or(w.egress_kind = 'passthrough') THEN 'medium' ELSE 'low' END AS severity,
    client_named(w.source_ip) AS source,
    w.destination,
    {
        'requests': count(*),
        'ports': list_sort(list(DISTINCT w.destination_port)),
        'egress_kind': string_agg(DISTINCT w.egress_kind, ',' ORDER BY w.egress_kind),
        'first_seen': min(w.start_time),
        'last_seen': max(w.start_time),
        'sample_request_ids': list(w.request_id ORDER BY w.start_time, w.request_id) FILTER (WHERE w.request_id IS NOT NULL)[1:3]
    } AS evidence,
    'This workload started calling ' || w.destination || ': check it is a planned change '
        || '(new release, new feature) and not a compromised or misconfigured pod.' AS advice
FROM win w
WHERE w.egress_kind <> 'blocked'
  AND EXISTS (SELECT 1 FROM base_pairs b WHERE b.destination = w.destination)
  -- (a format that logs no client, Envoy's default, leaves source_ip null: the same unknown client)
  AND NOT EXISTS (SELECT 1 FROM base_pairs b WHERE b.destination = w.destination
                  AND b.source_ip IS NOT DISTINCT FROM w.source_ip)
GROUP BY w.source_ip, w.destination
HAVING count(*) >= CAST($min_requests AS INTEGER)
ORDER BY count(*) DESC, w.destination, source
