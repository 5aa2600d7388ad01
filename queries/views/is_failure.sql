-- is_failure(response_code, response_flags, failure_flags): whether a request failed, as the
-- failure-based findings count it (error_spike, and the HTML report's error-share chart with
-- error_spike's failure_flags): a 5xx, or one of the response flags in failure_flags (text,
-- comma-separated, e.g. 'UF,UH'; has_failure_flag), so that a TCP connection that fails (code 0,
-- UF/UH) is a failure too. A 4xx is the destination's answer, not its failure (is_error, the error shares,
-- counts it). False, not null, when nothing of it is logged. Both count it over egress rows that
-- are not blocked (egress_kind <> 'blocked': a blocked attempt is policy at work, blocked_attempt's
-- finding). The stream's failure_burst alert holds the same rule in polars (logpipe/alerts.py,
-- is_failure), tested against this macro (tests/test_failures.py).
CREATE OR REPLACE MACRO is_failure(response_code, response_flags, failure_flags) AS (
    coalesce(response_code >= 500, false)
        OR coalesce(has_failure_flag(response_flags, failure_flags), false)
);
