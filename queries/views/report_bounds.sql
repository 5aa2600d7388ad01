-- report_bounds: the window and the baseline every anomaly query compares, from its parameters.
-- Empty values take the defaults the report gives (reports.resolve_window): the window is the last
-- 24 hours of the egress data, to a second past the last row of any kind (authz_denial's internal
-- denials logged after the last egress request are in it), the baseline everything before it; data
-- of no egress request, those of every row's. Returns one row: w0, w1 (window, end exclusive), b0, b1
-- (baseline). (The rows read are traffic's, not access_log's: in a report, which passes every bound,
-- it is the kept table (reports._materialize_traffic), not access_log's join of the clients'
-- workloads read once more by each section.)
CREATE OR REPLACE MACRO report_bounds(since, until, baseline_start, baseline_end) AS TABLE
WITH span AS (
    SELECT coalesce(e.lo, t.lo) AS lo, coalesce(e.hi, t.hi) AS hi, t.hi AS last
    FROM (SELECT min(start_time) AS lo, max(start_time) AS hi FROM egress) e,
         (SELECT min(start_time) AS lo, max(start_time) AS hi FROM traffic) t
)
SELECT
    coalesce(CAST(nullif(since, '') AS TIMESTAMPTZ), hi - INTERVAL 24 HOUR) AS w0,
    coalesce(CAST(nullif(until, '') AS TIMESTAMPTZ), last + INTERVAL 1 SECOND) AS w1,
    coalesce(CAST(nullif(baseline_start, '') AS TIMESTAMPTZ), lo) AS b0,
    coalesce(CAST(nullif(baseline_end, '') AS TIMESTAMPTZ),
             CAST(nullif(since, '') AS TIMESTAMPTZ), hi - INTERVAL 24 HOUR) AS b1
FROM span
