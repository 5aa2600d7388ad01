-- baseline_destinations(since, until, baseline_start, baseline_end): the baseline's destinations
-- (report_bounds.sql: b0 to b1), each once, not blocked, and whether it reached each (reached: the
-- proxy connected upstream for one of its requests, the traffic view's upstream_connected; a
-- destination only tried, without connecting, was never reached). new_destination and
-- direct_ip_egress join their window to it (NOT EXISTS over every baseline row built a hash table
-- of them all).
CREATE OR REPLACE MACRO baseline_destinations(since, until, baseline_start, baseline_end) AS TABLE
SELECT e.destination, bool_or(e.upstream_connected) AS reached
FROM egress e, report_bounds(since, until, baseline_start, baseline_end)
WHERE e.start_time >= b0 AND e.start_time < b1 AND e.egress_kind <> 'blocked'
GROUP BY e.destination
