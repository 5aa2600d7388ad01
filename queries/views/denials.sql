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
-- status: 401 Unauthorized", the answer to its HBONE CONNECT). The two are one denial, the inbound
-- line's, when they pair: same client IP (src.addr: the inbound line's port is the HBONE connection's,
-- not the app's, so the IP alone) and same address and port dialled (dst.hbone_addr, else dst.addr:
-- downstream_local_address, the destination workload's on both lines; istio/ztunnel
-- src/proxy/inbound.rs logs dst.hbone_addr as outbound.rs does), within 2 seconds either way (the lines
-- are two nodes' clocks, each written as the refusal completes). The pairing is one to one, nearest in
-- time first: each inbound refusal absorbs at most one 401, so three 401s against one inbound line are
-- three denials (one pair, two 401s alone), not one (a 401 with any inbound line near it was dropped).
-- (Nearest first is the greedy matching: rounds that each pair the 401s and inbound lines that are each
-- other's nearest, ties broken by time then line, until no candidate is left.) It is
-- judged over the whole data, never a report's window, and the pair's time is
--   denied_at  the earlier of its two lines' start_time (else the row's own): the one time a report's
--              window judges the denial by (authz_denial.sql), so a pair across the window's edge (or
--              the baseline's) counts once, on the side its first line is, never on neither (a 401
--              inside the window whose inbound line was past its end counted nowhere)
-- With only the client's node's logs read, its outbound line stays the one denial. (A waypoint's RBAC
-- 403 is no such pair: the waypoint answered it and never connected on, so no ztunnel refused that
-- request; a destination's ztunnel refusing the waypoint's connection is one denial, ztunnel's, as the
-- waypoint's row for it is no authorization policy's.) The pairs are looked up among the denied rows
-- alone, by equality joins (303,000 rows, 173,000 denied, 130,000 of them ztunnel's, 3,000 pairs, over a
-- table of the traffic view: `SELECT count(*) FROM denials` 21.5 s with the EXISTS over a time range,
-- 1.5-2.1 s paired).
CREATE OR REPLACE VIEW denials AS
WITH RECURSIVE denied AS (
    SELECT * FROM traffic
    WHERE authz_denied(response_code_details, connection_termination_details, response_flags, error)
),
-- the client's ztunnel's 401s and the destination's ztunnel's inbound refusals, each numbered (a row's
-- key: its source, line and time; a stream's dataset holds several runs' '<stdin>' lines)
echoes AS (
    SELECT row_number() OVER (ORDER BY start_time, source, line_number) AS id, source, line_number, start_time,
           downstream_remote_address_ip AS client_ip, downstream_local_address AS dialled
    FROM denied
    WHERE log_format LIKE 'ztunnel%' AND direction = 'outbound' AND ztunnel_refused(error)
),
refusals AS (
    SELECT row_number() OVER (ORDER BY start_time, source, line_number) AS id, source, line_number, start_time,
           downstream_remote_address_ip AS client_ip, downstream_local_address AS dialled
    FROM denied
    WHERE log_format LIKE 'ztunnel%' AND direction = 'inbound' AND ztunnel_refused(error)
),
candidates AS (  -- (every 401 and inbound refusal that may be one connection's two lines)
    SELECT e.id AS e, r.id AS r, abs(epoch_us(r.start_time) - epoch_us(e.start_time)) AS gap
    FROM echoes e JOIN refusals r ON r.client_ip = e.client_ip AND r.dialled = e.dialled
     AND r.start_time BETWEEN e.start_time - INTERVAL 2 SECOND AND e.start_time + INTERVAL 2 SECOND
),
rounds(e, r, gap, paired) AS (  -- (each round pairs the mutually nearest, and drops their other candidates)
    SELECT e, r, gap, false FROM candidates
    UNION ALL
    (WITH open AS (SELECT * FROM rounds WHERE NOT paired),
     nearest AS (SELECT * FROM open
                 QUALIFY row_number() OVER (PARTITION BY e ORDER BY gap, r) = 1
                     AND row_number() OVER (PARTITION BY r ORDER BY gap, e) = 1)
     SELECT e, r, gap, true FROM nearest
     UNION ALL
     SELECT e, r, gap, false FROM open o
     WHERE o.e NOT IN (SELECT e FROM nearest) AND o.r NOT IN (SELECT r FROM nearest))
),
pairs AS (
    SELECT coalesce(r.source, '') AS source, r.line_number, r.start_time,
           coalesce(e.source, '') AS e_source, e.line_number AS e_line, e.start_time AS e_time
    FROM rounds p JOIN echoes e ON e.id = p.e JOIN refusals r ON r.id = p.r
    WHERE p.paired
)
SELECT
    d.*,
    CASE
        WHEN rbac_denial(d.response_code_details, d.connection_termination_details) THEN 'rbac'
        WHEN ztunnel_denial(d.error) THEN 'ztunnel policy'
        ELSE 'ext_authz'
    END AS mechanism,
    CASE
        WHEN ztunnel_denial(d.error) THEN
            CASE WHEN d.error LIKE '%allow policies exist, but none allowed%' THEN 'none'
                 ELSE nullif(regexp_extract(d.error, 'explicitly denied by: (\S+)', 1), '') END
        -- (each field alone: the policy's own brackets make the match greedy, and a match over both
        -- fields joined would run from one field's policy to the other's end)
        ELSE coalesce(nullif(regexp_extract(d.response_code_details, 'rbac_access_denied_matched_policy\[(.*)\]', 1), ''),
                      nullif(regexp_extract(d.connection_termination_details, 'rbac_access_denied_matched_policy\[(.*)\]', 1), ''))
    END AS policy,
    least(d.start_time, p.e_time) AS denied_at
FROM denied AS d
LEFT JOIN pairs AS p  -- (an inbound refusal's 401)
    ON p.source = coalesce(d.source, '') AND p.line_number = d.line_number AND p.start_time = d.start_time
ANTI JOIN pairs AS a  -- (a 401 an inbound refusal absorbed)
    ON a.e_source = coalesce(d.source, '') AND a.e_line = d.line_number AND a.e_time = d.start_time;
