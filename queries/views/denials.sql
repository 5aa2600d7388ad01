-- denials: the traffic rows (every proxy, not only egress) refused by an authorization policy, one
-- row per request: Envoy's RBAC (rbac_denial.sql), ztunnel's policy rejection (ztunnel_denial.sql: the
-- destination's ztunnel's line, or the client's ztunnel's outbound "http status: 401 Unauthorized") or
-- an external authorizer (ext_authz_denial.sql): authz_denied.sql. The authz_denial report groups them by source and
-- destination; a live stream's authz_denial alert reads them row by row. All traffic columns, plus:
--   mechanism  'rbac', 'ztunnel policy' or 'ext_authz'
--   policy     RBAC's ns[NS]-policy[NAME]-rule[N] ("none": ALLOW policies exist and none matched);
--              ztunnel's NS/NAME of "explicitly denied by: NS/NAME", "none" of "allow policies
--              exist, but none allowed"; null when the log names none (the client's 401 never does)
-- One connection ztunnel's policy refused is logged twice when both nodes' ztunnel logs are read (as
-- README advises: kubectl logs -l app=ztunnel): the destination's ztunnel's inbound line ("connection
-- closed due to policy rejection…", naming the policy) and the client's ztunnel's outbound line ("http
-- status: 401 Unauthorized", the answer to its HBONE CONNECT). The outbound line is no second denial when
-- an inbound refusal of the same connection is in the data: same client IP (src.addr: the inbound
-- line's port is the HBONE connection's, not the app's, so the IP alone) and same address and port
-- dialled (dst.hbone_addr, else dst.addr: downstream_local_address, the destination workload's on
-- both lines; istio/ztunnel src/proxy/inbound.rs logs dst.hbone_addr as outbound.rs does), within
-- 2 seconds either way (the lines are two nodes' clocks, each written as the refusal completes). With
-- only the client's node's logs read, its outbound line stays the one denial. (A waypoint's RBAC 403 is
-- no such pair: the waypoint answered it and never connected on, so no ztunnel refused that request;
-- a destination's ztunnel refusing the waypoint's connection is one denial, ztunnel's, as the
-- waypoint's row for it is no authorization policy's.) The inbound refusals are looked up among the
-- denied rows alone (300,000 rows with 3,000 such pairs: `SELECT count(*) FROM denials` 0.56 → 0.60 s).
CREATE OR REPLACE VIEW denials AS
WITH denied AS (
    SELECT * FROM traffic
    WHERE authz_denied(response_code_details, connection_termination_details, response_flags, error)
),
inbound_refused AS (  -- (the destination's ztunnel's refusals: what the client's outbound line echoes)
    SELECT downstream_remote_address_ip AS client_ip, downstream_local_address AS dialled, start_time
    FROM denied
    WHERE log_format LIKE 'ztunnel%' AND direction = 'inbound' AND ztunnel_refused(error)
)
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
FROM denied AS d
WHERE NOT (d.log_format LIKE 'ztunnel%' AND d.direction = 'outbound' AND ztunnel_refused(d.error)
           AND EXISTS (SELECT 1 FROM inbound_refused AS r
                       WHERE r.client_ip = d.downstream_remote_address_ip AND r.dialled = d.downstream_local_address
                         AND r.start_time BETWEEN d.start_time - INTERVAL 2 SECOND AND d.start_time + INTERVAL 2 SECOND));
