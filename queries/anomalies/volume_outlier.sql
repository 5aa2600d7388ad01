-- title: Volume outliers (uploads)
-- description: Unusually large uploads per source and destination: bytes_received is what the
--   client sent, i.e. data leaving the mesh, a data-exfiltration signal. Compared with the pair's
--   baseline daily upload (its bytes over the baseline's days, first to last record; the
--   destination's baseline per-request p99 is evidence). The pair's baseline is its client's
--   workload's (client_workload.sql): a Deployment's new pod, a CronJob's next run, uploads as its
--   workload did. A pair the baseline never reached (as new_pair.sql's base_pairs judges it) is not
--   this finding's: its upload is new_pair's or new_destination's, high from their upload_high (one
--   upload, one finding: a new pair's 50 MB, or a new destination's, was a high new_* and a medium
--   volume_outlier, against its destination's upload per workload or a baseline of 0 bytes); with no
--   baseline at all, where new_destination rates every destination info, every pair is judged here.
--   High from high_bytes uploaded, or a window rate of high_factor times or more the pair's baseline
--   daily upload (a payments pod of ~1.2 MB a day that uploaded 80 MB in 13 minutes, 67 times its
--   day, was medium, as any upload under high_bytes was; a monthly job's run is some 30 times its
--   day over a baseline of a month or more, and stays medium; a pair of no upload in the baseline is
--   high from min_bytes, as a new pair is from upload_high).
--   A pair's window rate is its window upload over its own first to last request in the window, a
--   day at least (a burst in a window of days counts at its own rate): the evidence's daily_bytes.
--   A slow upload spread over days is flagged too: a pair that first appeared in the baseline after
--   its first 7 days and within recent_days of the window (it began recently: a pair of the baseline's
--   first week may be old, a weekly job's or a weekday client's, whose days of the week it had not all
--   seen), of a client the baseline saw a week before it (a new workload's pairs all begin with it:
--   new_pair's), and uploads in the window is flagged when its upload since it first appeared
--   (bytes_up_since_first_seen, the baseline's and the window's) is min_bytes or more and
--   volume_factor times or more the client's baseline daily upload to its other destinations. A
--   client that started uploading 5 MB a day to a known host was a new_pair its first day and nothing
--   after (its pair's baseline was its own upload): tests/test_anomaly_quality.py.
--   An upload, the window's and the baseline's, is what left: requests the proxy sent on (upstream_connected)
--   and no authorization policy refused (authz_denied.sql: authz_denial's), as new_pair's is (win, below).
-- @param since '' window start (ISO time); empty = 24 hours before the last egress request (the last record where none is egress)
-- @param until '' window end (ISO time, exclusive); empty = after the last record (of any kind, not only the last egress request)
-- @param baseline_start '' baseline start (ISO time); empty = the first egress request (the first record where none is egress)
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param min_bytes 10000000 smallest window upload (bytes) of a pair worth a finding
-- @param volume_factor 10.0 how many times its baseline daily upload a pair must reach
-- @param high_bytes 100000000 window upload (bytes) of a pair that makes it high (of a recent pair: its upload since it first appeared)
-- @param high_factor 50.0 how many times its baseline daily upload a pair's window rate must reach to be high
-- @param recent_days 7 days before the window within which a pair that first appeared in the baseline is judged by its upload since
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
-- (what left: an upload is the bytes_received of a request the proxy sent on, as new_pair's and
-- new_destination's upload is; one it made no upstream connection for (UF, UH, NC, DF…: traffic.sql's
-- upstream_connected) kept its client's body in the mesh, and one an authorization policy refused
-- (authz_denied.sql: an RBAC 403, UAEX) is authz_denial's finding, not an upload too: one event, one
-- finding: 80 MB of POSTs an RBAC policy refused was a high volume_outlier beside its authz_denial, and
-- 40 MB of 503 UF PUTs a high one, tests/test_one_upload_one_finding.py. Its requests, largest request
-- and sample ids are of these requests too.)
win AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1
        AND e.egress_kind <> 'blocked' AND e.upstream_connected
        AND NOT authz_denied(e.response_code_details, e.connection_termination_details, e.response_flags, e.error)),
-- The baseline is read as it is summed, by pair (and its uploads' p99 by destination, below), never
-- kept: a CTE of its rows that three aggregates read, DuckDB kept them all (a 10M-row, 6.8-day
-- dataset's 5.8M baseline rows, 375 MB of the 768 MiB DuckDB may hold: the section peaked at it).
-- A pair's blocked requests count toward the baseline's days only.
base_seen AS (
    SELECT client_named(source_owner, source_ip) AS client, destination,
        min(start_time) AS lo, max(start_time) AS hi,
        count(*) FILTER (WHERE egress_kind <> 'blocked') AS requests,
        -- (the baseline's upload is what left too, as the window's: a pair's refused or unconnected
        -- requests of the baseline, counted, raised its daily upload, and a window upload measured by
        -- what left was then judged against more than left before; 0, not null, for a pair that sent none)
        sum(CASE WHEN upstream_connected AND NOT authz_denied(response_code_details, connection_termination_details,
                                                              response_flags, error)
                 THEN bytes_received ELSE 0 END) FILTER (WHERE egress_kind <> 'blocked') AS bytes,
        min(start_time) FILTER (WHERE egress_kind <> 'blocked') AS first_seen,
        bool_or(upstream_connected) FILTER (WHERE egress_kind <> 'blocked') AS reached
    FROM egress, bounds WHERE start_time >= b0 AND start_time < b1
    GROUP BY client, destination
),
-- The baseline's days, its first to its last record (at least one), that its daily uploads average
-- over: a pair's own first-to-last span made a pair seen on two days of seven a two-day average.
base_days AS (SELECT greatest(date_diff('second', min(lo), max(hi)) / 86400.0, 1.0) AS days,
                      min(lo) AS first FROM base_seen),
-- (by workload: a nightly CronJob's run is a new pod each night, so its pair had no baseline, and the
-- destination's per source was spread over every night's pod: 50 MB a night flagged on day 15; and
-- whether it reached the destination: one it never reached is new_pair's or new_destination's)
base_pair AS (
    SELECT client, destination, reached, bytes / days AS daily, bytes, first_seen
    FROM base_seen, base_days WHERE requests > 0
),
-- (a client's baseline daily upload to all its destinations: less a pair's, its usual to the others;
-- and its first request, before which a pair of a client seen for a week is new for it)
base_client AS (SELECT client, sum(daily) AS daily, min(first_seen) AS first_seen FROM base_pair GROUP BY client),
-- (a pair that began recently: after the baseline's first week, within recent_days of the window; after
-- its first day, a weekly job's run on the baseline's third day was one, and its next run, a week later,
-- 'a steady upload that began recently'; and of a client seen a week before it: a workload deployed
-- 3 days before the window, 4 MB a night to each of two hosts from its first night, was judged against
-- its other pair's upload spread over the baseline's 11 days, and both were: tests/test_anomaly_quality.py)
recent AS (
    SELECT bp.client, bp.destination, bp.first_seen, bp.bytes, bc.daily - bp.daily AS other_daily
    FROM base_pair bp JOIN base_client bc USING (client), base_days, bounds
    WHERE bp.first_seen >= base_days.first + INTERVAL 7 DAY
      AND bp.first_seen >= bc.first_seen + INTERVAL 7 DAY
      AND bp.first_seen >= w0 - to_days(CAST($recent_days AS INTEGER))
),
-- (a destination's baseline p99 upload of one request: quantile_cont keeps every value, 8 bytes each,
-- 45 MB of the 10M-row dataset's 5.65M; a p99 counted from its sizes in SQL would keep less but not
-- be the same: DuckDB's interpolation is a fused multiply-add on this x86-64 wheel, and lo * (1 - d)
-- + hi * d in SQL differed in the last bit for 108 of 1,339 random destinations, which a CAST can round apart)
base_p99 AS (
    SELECT destination, quantile_cont(bytes_received, 0.99) AS p99
    FROM egress, bounds
    WHERE start_time >= b0 AND start_time < b1 AND egress_kind <> 'blocked'
      AND upstream_connected  -- (the uploads that left, as the window's)
      AND NOT authz_denied(response_code_details, connection_termination_details, response_flags, error)
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
    FROM win
    GROUP BY ALL
)
SELECT
    'volume_outlier' AS kind,
    CASE WHEN w.bytes_up >= CAST($high_bytes AS BIGINT) OR w.since >= CAST($high_bytes AS BIGINT)
              -- (a large multiple of the pair's own day; of no baseline, null: not high)
              OR w.daily >= CAST($high_factor AS DOUBLE) * bp.daily THEN 'high'
         ELSE 'medium' END AS severity,
    w.client AS source,
    w.destination,
    {
        'bytes_up': CAST(w.bytes_up AS BIGINT),
        'requests': w.requests,
        'largest_request_bytes': w.largest,
        'baseline_daily_bytes': CAST(coalesce(bp.daily, 0) AS BIGINT),
        'baseline_request_p99_bytes': CAST(bq.p99 AS BIGINT),
        'daily_bytes': CAST(w.daily AS BIGINT),
        -- (a pair that began recently: its upload since, and the client's baseline daily upload elsewhere)
        'pair_first_seen': evidence_time(w.pair_first_seen),
        'bytes_up_since_first_seen': CAST(w.since AS BIGINT),
        'client_other_daily_bytes': CAST(w.other_daily AS BIGINT),
        'first_seen': evidence_time(w.first_seen),
        'last_seen': evidence_time(w.last_seen),
        'sample_request_ids': w.ids
    } AS evidence,
    w.client || ' uploaded ' || CAST(round(w.bytes_up / 1e6, 1) AS VARCHAR) || ' MB to ' || w.destination
        || CASE WHEN w.since IS NOT NULL
                THEN ' in the window, ' || CAST(round(w.since / 1e6, 1) AS VARCHAR) || ' MB since it first called it ('
                     || strftime(w.pair_first_seen AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M UTC') || '), against '
                     || CAST(round(w.other_daily / 1e6, 1) AS VARCHAR) || ' MB a day to its other destinations: '
                     || 'a steady upload that began recently is how slow exfiltration looks.'
                -- (the rate it was judged by, and over what: a window of days' total is no day's)
                ELSE ' (' || CAST(round(w.daily / 1e6, 1) AS VARCHAR) || ' MB a day over its first to last request in '
                     || 'the window, a day at least, against ' || CAST(round(coalesce(bp.daily, 0) / 1e6, 1) AS VARCHAR)
                     || ' MB a day in the baseline)' END
        || CASE WHEN w.since IS NOT NULL THEN ' Confirm' ELSE ': confirm' END
        || ' this transfer is expected (backup, export); if not, isolate the pod and '
        || 'check what it sent (request ids in the evidence).' AS advice,
    w.source_ips
FROM (
    -- (a recent pair's upload since it first appeared, when it makes the finding)
    SELECT w.*, r.first_seen AS pair_first_seen, r.bytes + w.bytes_up AS since, r.other_daily
    FROM win_pair w LEFT JOIN recent r ON r.client = w.owner AND r.destination = w.destination
        AND w.bytes_up > 0 AND r.bytes + w.bytes_up >= CAST($min_bytes AS BIGINT)
        AND r.bytes + w.bytes_up >= CAST($volume_factor AS DOUBLE) * r.other_daily
) w
LEFT JOIN base_pair bp ON bp.client = w.owner AND bp.destination = w.destination
LEFT JOIN base_p99 bq ON bq.destination = w.destination
-- (a pair the baseline reached; with no baseline, base_days' first is null: every pair)
WHERE (bp.reached OR (SELECT first FROM base_days) IS NULL)
  AND (w.since IS NOT NULL
       OR (w.bytes_up >= CAST($min_bytes AS BIGINT)
           AND w.daily >= CAST($volume_factor AS DOUBLE) * coalesce(bp.daily, 0)))
ORDER BY w.bytes_up DESC, w.destination, source
