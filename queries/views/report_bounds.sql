-- report_bounds: the window and the baseline every anomaly query compares, from its parameters.
-- Empty values take the defaults: the window is the last 24 hours of the egress data, the baseline
-- everything before it. Returns one row: w0, w1 (window, end exclusive), b0, b1 (baseline).
CREATE OR REPLACE MACRO report_bounds(since, until, baseline_start, baseline_end) AS TABLE
SELECT
    coalesce(CAST(nullif(since, '') AS TIMESTAMPTZ), max(start_time) - INTERVAL 24 HOUR) AS w0,
    coalesce(CAST(nullif(until, '') AS TIMESTAMPTZ), max(start_time) + INTERVAL 1 SECOND) AS w1,
    coalesce(CAST(nullif(baseline_start, '') AS TIMESTAMPTZ), min(start_time)) AS b0,
    coalesce(CAST(nullif(baseline_end, '') AS TIMESTAMPTZ),
             CAST(nullif(since, '') AS TIMESTAMPTZ), max(start_time) - INTERVAL 24 HOUR) AS b1
FROM egress
