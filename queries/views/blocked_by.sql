-- blocked_by(upstream_cluster, route_name, method, response_code, response_code_details, response_flags):
-- what blocked a row the traffic view judged 'blocked' (traffic.sql), in its order: BlackHoleCluster
-- (REGISTRY_ONLY, TCP/TLS) or the block_all route (plain HTTP under REGISTRY_ONLY); else, of a CONNECT
-- (a blocked one that is neither is one the proxy refused, connect_refused.sql), its refusal:
-- 'authorization policy' (RBAC's 403 rbac_access_denied_matched_policy[…], ext_authz's UAEX:
-- authz_denied.sql), 'no route' (the router's 404 NR, route_not_found: no route matched the CONNECT),
-- 'CONNECT not enabled' (403 upgrade_failed: the connection manager refused an upgrade its route does
-- not enable), 'proxy authentication' (407), else its code ('http 403': a format without
-- %RESPONSE_CODE_DETAILS%, Envoy's default, does not say whose 403 it was); else 'no route' (a 404
-- NR: Istio before 1.3, plain HTTP to an unknown host). Envoy logs the route's cluster and name on a
-- CONNECT it refused after routing it, so neither names such a refusal. denied and blocked_attempt
-- name the block by it, as the stream's blocked_attempt alert does (alerts.ROWS_SQL).
CREATE OR REPLACE MACRO blocked_by(upstream_cluster, route_name, method, response_code,
                                   response_code_details, response_flags) AS (
    CASE
        WHEN upstream_cluster = 'BlackHoleCluster' THEN upstream_cluster
        WHEN route_name = 'block_all' THEN route_name
        WHEN connect_tunnel(method) THEN CASE
            WHEN authz_denied(response_code_details, NULL, response_flags, NULL) THEN 'authorization policy'
            WHEN response_code = 404 AND (coalesce(list_contains(response_flags, 'NR'), false)
                                          OR response_code_details = 'route_not_found') THEN 'no route'
            WHEN response_code_details = 'upgrade_failed' THEN 'CONNECT not enabled'
            WHEN response_code = 407 THEN 'proxy authentication'
            ELSE 'http ' || response_code
        END
        ELSE coalesce(upstream_cluster, route_name, 'no route')
    END
);
