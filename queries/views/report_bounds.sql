-- report_bounds: the window and the baseline every anomaly query compares, from its parameters.
-- Empty values take the defaults the report gives (reports.resolve_window): the window is the last
-- 24 hours of the egress data, the baseline everything before it; data of no egress request, those of
-- every row's (authz_denial's internal denials are findings there too). Returns one row: w0, w1
-- (window, end exclusive), b0, b1 (baseline). (The fallback reads traffic, not access_log: in a report,
-- which passes every bound, it is the kept table (reports._materialize_traffic), not access_log's
-- join of the clients' workloads read once more by each section.)
CREATE OR REPLACE MACRO report_bounds(since, until, baseline_start, baseline_end) AS TABLE
WITH span AS (
    SELECT coalesce(e.lo, t.lo) AS lo, coalesce(e.hi, t.hi) AS hi
    FROM (SELECT min(start_time) AS lo, max(start_time) AS hi FROM egress) e,
         (SELECT min(start_time) AS lo, max(start_time) AS hi FROM traffic) t
)
SELECT
    coalesce(CAST(nullif(since, '') AS TIMESTAMPTZ), hi - INTERVAL 24 HOUR) AS w0,
    coalesce(CAST(nullif(until, '') AS TIMESTAMPTZ), hi + INTERVAL 1 SECOND) AS w1,
    coalesce(CAST(nullif(baseline_start, '') AS TIMESTAMPTZ), lo) AS b0,
    coalesce(CAST(nullif(baseline_end, '') AS TIMESTAMPTZ),
             CAST(nullif(since, '') AS TIMESTAMPTZ), hi - INTERVAL 24 HOUR) AS b1
FROM span
