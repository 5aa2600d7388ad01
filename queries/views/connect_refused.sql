-- connect_refused(method, response_code, upstream_host): a CONNECT the proxy refused before any
-- upstream connection (connect_tunnel.sql), with no upstream host: 403 (an authorization policy's,
-- RBAC's rbac_access_denied_matched_policy[…] or ext_authz's UAEX; or the connection manager's own
-- answer to a CONNECT its route does not enable, details upgrade_failed), 404 (no route matched it:
-- the router's NR, route_not_found; Envoy's route matchers need a connect_matcher for a CONNECT, which
-- has no path) or 407 (proxy authentication required). The traffic view counts one as not
-- upstream_connected, and as a blocked attempt to its authority (traffic.sql); blocked_by.sql names
-- which refusal it was.
CREATE OR REPLACE MACRO connect_refused(method, response_code, upstream_host) AS (
    connect_tunnel(method) AND coalesce(response_code IN (403, 404, 407), false) AND upstream_host IS NULL
);
