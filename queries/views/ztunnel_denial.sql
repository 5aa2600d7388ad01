-- ztunnel_denial(error): whether ztunnel refused a connection by AuthorizationPolicy, read from its
-- access line's `error` (null on every other proxy's rows). ztunnel writes (istio/ztunnel
-- src/proxy.rs, Error): "connection closed due to policy rejection" (older builds), the same with
-- ": allow policies exist, but none allowed", ": explicitly denied by: NAMESPACE/NAME",
-- ": workload not found" or ": workload mismatch" after it (its AuthorizationRejectionError), and
-- "connection closed due to policy change" (an open connection a changed policy no longer allows);
-- and, on the client's outbound line, "http status: 401 Unauthorized": the destination's ztunnel (or
-- the client's own, for a pod on its node) refused the connection by policy (ztunnel_refused.sql),
-- the one line of the denial when only the client's node's logs were read.
-- Its other errors ("connection failed: …", another "http status: …", "io error: …") are not policy's.
-- False, not null, when there is no error.
CREATE OR REPLACE MACRO ztunnel_denial(error) AS (
    ztunnel_refused(error)
        OR coalesce(regexp_matches(error, '(?i)connection closed due to policy (rejection|change)'), false)
);
