-- ztunnel_failed(error, failure_flags): whether ztunnel's `error` on a connection is a failure, as a
-- response flag in failure_flags (text, comma-separated) is one of Envoy's: any error but a policy's
-- refusal (ztunnel_denial: authz_denial's finding, not a failure) and but the client's own hang-up,
-- "client disconnected before all data was written" (istio/ztunnel src/proxy.rs,
-- Error::ClientDisconnected; also inside "send: …"), which is Envoy's DC and counts only when
-- failure_flags names DC, as DC does (error_spike's and the error shares' defaults leave DC out).
-- False for a null error (every other proxy's rows). is_failure and is_error read ztunnel's rows so.
CREATE OR REPLACE MACRO ztunnel_failed(error, failure_flags) AS (
    error IS NOT NULL AND NOT ztunnel_denial(error)
        AND (NOT contains(error, 'client disconnected before all data was written')
             OR coalesce(has_failure_flag(['DC'], failure_flags), false))
);
