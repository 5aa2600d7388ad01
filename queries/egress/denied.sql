-- title: Denied egress
-- description: Egress the mesh refused: blocked by REGISTRY_ONLY (BlackHoleCluster, block_all),
--   denied by an AuthorizationPolicy (RBAC) or ext_authz (UAEX), or a 403 from the egress path;
--   by source and destination, with the reason as logged.
-- @param limit 50 rows to show
SELECT
    source_ip,
    destination,
    destination_port,
    CASE
        WHEN egress_kind = 'blocked' THEN 'blocked (' || blocked_by(upstream_cluster, route_name) || ')'
        WHEN list_contains(response_flags, 'UAEX') THEN 'ext_authz'
        WHEN coalesce(response_code_details, connection_termination_details) LIKE 'rbac_access_denied%'
            THEN 'rbac'
        ELSE 'http ' || response_code
    END AS denied_by,
    count(*) AS attempts,
    min(start_time) AS first_seen,
    max(start_time) AS last_seen
FROM egress
WHERE egress_kind = 'blocked'
   OR list_contains(response_flags, 'UAEX')
   OR response_code_details LIKE 'rbac_access_denied%'
   OR connection_termination_details LIKE 'rbac_access_denied%'
   OR response_code = 403
GROUP BY ALL
ORDER BY attempts DESC, source_ip, destination
LIMIT $limit
