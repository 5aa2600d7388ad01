-- title: Denied egress
-- description: Egress the mesh refused, by source and destination, with the reason as logged:
--   blocked by REGISTRY_ONLY (BlackHoleCluster, block_all) or a CONNECT the proxy refused (blocked_by.sql
--   names why: no route, CONNECT not enabled, proxy authentication; one a policy refused is named by
--   the policy's mechanism, as any other policy's refusal), denied by an AuthorizationPolicy (RBAC:
--   rbac_access_denied_matched_policy[…] in response_code_details or connection_termination_details)
--   or ext_authz (flag UAEX, or details ext_authz_denied), refused by ztunnel's policy (its error
--   "connection closed due to policy rejection…" or "…policy change": ztunnel_denial.sql; a ztunnel
--   connection is egress when it goes straight to a public address), or another 403 the mesh may
--   have said: one whose response_code_details are not via_upstream (unknown, as formats before 1.9
--   log none, or a proxy's own answer such as direct_response). A 403 via_upstream is the
--   destination's own answer (httpbin's /status/403), not a refusal: it is not listed.
-- @param limit 50 rows to show
SELECT
    client_named(source_workload, source_ip) AS source,
    destination,
    destination_port,
    CASE  -- (a policy's refusal by its mechanism, first: a CONNECT one refused is blocked too)
        WHEN ext_authz_denial(response_flags, response_code_details) THEN 'ext_authz'
        WHEN rbac_denial(response_code_details, connection_termination_details) THEN 'rbac'
        WHEN ztunnel_denial(error) THEN 'ztunnel policy'
        WHEN egress_kind = 'blocked' THEN 'blocked (' || blocked_by(upstream_cluster, route_name, method, response_code,
                                                                    response_code_details, response_flags) || ')'
        ELSE 'http ' || response_code
    END AS denied_by,
    count(*) AS attempts,
    evidence_time(min(start_time)) AS first_seen,
    evidence_time(max(start_time)) AS last_seen,
    client_ips(source_ip) AS source_ips
FROM egress
WHERE egress_kind = 'blocked'
   OR ext_authz_denial(response_flags, response_code_details)
   OR rbac_denial(response_code_details, connection_termination_details)
   OR ztunnel_denial(error)
   OR (response_code = 403 AND response_code_details IS DISTINCT FROM 'via_upstream')
GROUP BY ALL
ORDER BY attempts DESC, source, destination, destination_port, denied_by
LIMIT $limit
