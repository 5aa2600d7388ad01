-- denials: the traffic rows (every proxy, not only egress) refused by an authorization policy, one
-- row per request: Envoy's RBAC (rbac_denial.sql), ztunnel's policy rejection (ztunnel_denial.sql: the
-- destination's ztunnel's line, or the client's ztunnel's outbound "http status: 401 Unauthorized") or
-- an external authorizer (ext_authz_denial.sql): authz_denied.sql. The authz_denial report groups them by source and
-- destination; a live stream's authz_denial alert reads them row by row. All traffic columns, plus:
--   mechanism  'rbac', 'ztunnel policy' or 'ext_authz'
--   policy     RBAC's ns[NS]-policy[NAME]-rule[N] ("none": ALLOW policies exist and none matched);
--              ztunnel's NS/NAME of "explicitly denied by: NS/NAME", "none" of "allow policies
--              exist, but none allowed"; null when the log names none (the client's 401 never does)
CREATE OR REPLACE VIEW denials AS
SELECT
    *,
    CASE
        WHEN rbac_denial(response_code_details, connection_termination_details) THEN 'rbac'
        WHEN ztunnel_denial(error) THEN 'ztunnel policy'
        ELSE 'ext_authz'
    END AS mechanism,
    CASE
        WHEN ztunnel_denial(error) THEN
            CASE WHEN error LIKE '%allow policies exist, but none allowed%' THEN 'none'
                 ELSE nullif(regexp_extract(error, 'explicitly denied by: (\S+)', 1), '') END
        -- (each field alone: the policy's own brackets make the match greedy, and a match over both
        -- fields joined would run from one field's policy to the other's end)
        ELSE coalesce(nullif(regexp_extract(response_code_details, 'rbac_access_denied_matched_policy\[(.*)\]', 1), ''),
                      nullif(regexp_extract(connection_termination_details, 'rbac_access_denied_matched_policy\[(.*)\]', 1), ''))
    END AS policy
FROM traffic
WHERE authz_denied(response_code_details, connection_termination_details, response_flags, error);
