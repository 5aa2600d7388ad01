-- is_failure(response_code, response_flags, failure_flags, error): whether a request failed, as the
-- failure-based findings count it (error_spike, the HTML report's error-share chart with
-- error_spike's failure_flags, and the stream's failure_burst alert): a 5xx, or one of the response
-- flags in failure_flags (text, comma-separated, e.g. 'UF,UH'; has_failure_flag), so that a TCP
-- connection that fails (code 0, UF/UH) is a failure too, or a connection ztunnel logged with an
-- `error` that is not a policy's (istio/ztunnel src/proxy/metrics.rs: a connection that did not
-- complete is logged at level error with `error="io error: Connection refused (os error 111)"`,
-- `"io error: deadline has elapsed"`, `"http status: 503 …"`, and no flag or code says so; `error`
-- is null on every other proxy's rows; the client's own hang-up is Envoy's DC: ztunnel_failed). A 4xx is the destination's answer, not its failure, and a
-- policy's refusal (ztunnel_denial, as an RBAC 403) is authz_denial's finding, not a failure; the
-- error shares (is_error) count both. False, not null, when nothing of it is logged. Each caller
-- counts it over egress rows that are not blocked (egress_kind <> 'blocked': a blocked attempt is
-- policy at work, blocked_attempt's finding).
-- is_failure(response_code, response_flags, failure_flags), the form before `error` (an operator's
-- own SQL may call it so), is the same with `error` unknown: the code and flag half alone (a DuckDB
-- macro overload; one overload cannot call another, and tests/test_failures.py checks the two agree).
CREATE OR REPLACE MACRO is_failure(response_code, response_flags, failure_flags, error) AS (
    coalesce(response_code >= 500, false)
        OR coalesce(has_failure_flag(response_flags, failure_flags), false)
        OR ztunnel_failed(error, failure_flags)
), (response_code, response_flags, failure_flags) AS (
    coalesce(response_code >= 500, false)
        OR coalesce(has_failure_flag(response_flags, failure_flags), false)
);
