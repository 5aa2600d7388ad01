-- is_error(response_code, response_flags, failure_flags, connection_termination_details, error):
-- whether a request failed, as every error share counts it (inventory destinations,
-- top_destinations): a 4xx or 5xx, or one of the response flags in failure_flags (text,
-- comma-separated, e.g. 'UF,UH'), so that a TCP connection that fails every time (code 0, UF/UH) is
-- a failure too, or a connection refused by policy (connection_denied: a waypoint's or sidecar's TCP
-- RBAC denial, ztunnel's policy rejection; code 0, no flags), as an HTTP request's RBAC denial is a
-- 403, or any other connection ztunnel logged with an `error` (istio/ztunnel src/proxy/metrics.rs:
-- a connection that did not complete is logged at level error with `error="io error: Connection
-- refused (os error 111)"`, `"io error: deadline has elapsed"`, `"http status: 503 …"`, and no flag
-- or code says so; `error` is null on every other proxy's rows; the client's own hang-up is Envoy's
-- DC, counted only when failure_flags names DC: ztunnel_failed). False, not null, when nothing of it
-- is logged.
-- is_error(response_code, response_flags, failure_flags), the form before the policy columns (an
-- operator's own SQL may call it so), is the same with those two unknown: connection_denied(NULL,
-- NULL) is false, so it is the code and flag half alone (a DuckDB macro overload; one overload
-- cannot call another, and tests/test_failures.py checks the two agree).
CREATE OR REPLACE MACRO is_error(response_code, response_flags, failure_flags, connection_termination_details, error) AS (
    coalesce(response_code >= 400, false)
        OR coalesce(has_failure_flag(response_flags, failure_flags), false)
        OR connection_denied(connection_termination_details, error)
        OR ztunnel_failed(error, failure_flags)
), (response_code, response_flags, failure_flags) AS (
    coalesce(response_code >= 400, false)
        OR coalesce(has_failure_flag(response_flags, failure_flags), false)
);
