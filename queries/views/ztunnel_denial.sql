-- ztunnel_denial(error): whether ztunnel refused a connection by AuthorizationPolicy, read from its
-- access line's `error` (null on every other proxy's rows). ztunnel writes (istio/ztunnel
-- src/proxy.rs, Error): "connection closed due to policy rejection" (older builds), the same with
-- ": allow policies exist, but none allowed", ": explicitly denied by: NAMESPACE/NAME",
-- ": workload not found" or ": workload mismatch" after it (its AuthorizationRejectionError), and
-- "connection closed due to policy change" (an open connection a changed policy no longer allows).
-- Its other errors ("connection failed: …", "http status: …", "io error: …") are not policy's.
-- False, not null, when there is no error.
CREATE OR REPLACE MACRO ztunnel_denial(error) AS (
    coalesce(regexp_matches(error, '(?i)connection closed due to policy (rejection|change)'), false)
);
