-- ztunnel_refused(error): whether ztunnel's `error` says an authorization policy refused a connection
-- before it came up, so nothing of it reached the destination: "connection closed due to policy
-- rejection…" at the start of the error (the destination's ztunnel checks its policy before it
-- connects to the pod: istio/ztunnel src/proxy/inbound.rs, assert_rbac before freebind_connect), or
-- "http status: 401 Unauthorized", which the client's ztunnel logs on its outbound line when the
-- destination's ztunnel answered its HBONE CONNECT so (inbound.rs answers a policy's refusal, and only
-- that, with 401: ResponseFlags::AuthorizationPolicyDenied) or its own node-local fast path's policy
-- refused the connection (older builds, src/proxy/outbound.rs: "RBAC rejected",
-- Error::HttpStatus(UNAUTHORIZED)); istio/ztunnel#691 shows the client's line. Not "…policy change"
-- (a connection a changed policy closed was open) nor the same text inside "send: …" (bytes had
-- flowed). False for a null error. ztunnel_denial counts these as a policy's denials, and the traffic
-- view's upstream_connected is false for them (traffic.sql), as for an HTTP request RBAC denied.
CREATE OR REPLACE MACRO ztunnel_refused(error) AS (
    coalesce(regexp_matches(error, '^(connection closed due to policy rejection|http status: 401\b)'), false)
);
