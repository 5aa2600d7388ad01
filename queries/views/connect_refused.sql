-- connect_refused(method, response_code, upstream_host): a CONNECT the proxy refused before any
-- upstream connection (connect_tunnel.sql): 403 (Envoy's own answer to a CONNECT its route does not allow, details
-- upgrade_failed; an RBAC or ext_authz denial) or 407 (proxy authentication required), with no
-- upstream host. The traffic view counts one as not upstream_connected, and one that no
-- authorization policy refused as a blocked attempt (traffic.sql).
CREATE OR REPLACE MACRO connect_refused(method, response_code, upstream_host) AS (
    connect_tunnel(method) AND coalesce(response_code IN (403, 407), false) AND upstream_host IS NULL
);
