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
-- (Nearest first is the greedy matching over every 401 and inbound line within 2 s of each other: the
-- nearest pair first, then the nearest of the rest; at the same gap a 401 before its refusal first, then
-- the pair nearest in the lines' time order, pos below.) It is
-- judged over the whole data, never a report's window, and the pair's time is
--   denied_at  the earlier of its two lines' start_time (else the row's own): the one time a report's
--              window judges the denial by (authz_denial.sql), so a pair across the window's edge (or
--              the baseline's) counts once, on the side its first line is, never on neither (a 401
--              inside the window whose inbound line was past its end counted nowhere)
-- With only the client's node's logs read, its outbound line stays the one denial. (A waypoint's RBAC
-- 403 is no such pair: the waypoint answered it and never connected on, so no ztunnel refused that
-- request; a destination's ztunnel refusing the waypoint's connection is one denial, ztunnel's, as the
-- waypoint's row for it is no authorization policy's.) The pairs are looked up among the denied rows
-- alone (303,000 rows, 173,000 denied, 130,000 of them ztunnel's, 3,000 pairs, over a table of the
-- traffic view: `SELECT count(*) FROM denials` 21.5 s with an EXISTS over a time range, 1.5-2.1 s
-- paired), in rounds: each pairs the open 401s and inbound lines that are each other's nearest open line
-- of the other kind, and a line's nearest is one of two, the open line of the other kind just before it
-- and just after it among its key's lines in time order (window functions; a pair of the greedy matching
-- has no open line between its two when it is made, or a nearer pair would be). That is the greedy
-- matching (tests/test_denials.py checks it against one in Python on seeded random hammering clients)
-- with no candidate list: every 401 and inbound line within 2 s was one, 800 a 401 for a client
-- retrying 200 times a second (20,000 401s and their inbound lines at the same times, 40,000 lines):
-- `logpipe query --sql "select count(*) from denials"` 35 s and 940 MB (the EXISTS: 4.6-11 s and
-- 960 MB), now 0.7-1.0 s and 195 MB (`select count(*) from traffic` 0.4 s and 135 MB; `report
-- anomalies` 21 → 1.3 s); 100,000 at 500 a second, 1.2-2.6 s and 425 MB (traffic 0.7-0.95 s and
-- 150 MB): the pairing's sorts and windows are most of it, not the traffic view. Rounds stop at 64 (a
-- chain of ever wider gaps takes a round a pair; a key whose round made no pair is done): 401s still
-- open then stay denials. Lines out of order take more rounds: the same 20,000 with 200 ms of jitter
-- on each line and the inbound lines 0.5 s later, 26 rounds, 2.1 s and 176 MB. At the same gap a 401
-- takes the refusal after it and a refusal the 401 before it, so evenly spaced lines pair in one round
-- (at the same gap each took the earlier line, which paired such a chain one pair a round).
CREATE OR REPLACE VIEW denials AS
WITH RECURSIVE denied AS (
    SELECT * FROM traffic
    WHERE authz_denied(response_code_details, connection_termination_details, response_flags, error)
),
-- the client's ztunnel's 401s and the destination's ztunnel's inbound refusals of each (client IP,
-- address dialled), numbered in time order (pos: key, time, the 401 first, source, line; a stream's
-- dataset holds several runs' '<stdin>' lines)
echoes AS (
    SELECT row_number() OVER (ORDER BY client_ip, dialled, start_time, refusal, source, line_number) AS pos,
           dense_rank() OVER (ORDER BY client_ip, dialled) AS k, epoch_us(start_time) AS us, *
    FROM (SELECT source, line_number, start_time, direction = 'inbound' AS refusal,
                 downstream_remote_address_ip AS client_ip, downstream_local_address AS dialled
          FROM denied
          WHERE log_format LIKE 'ztunnel%' AND direction IN ('outbound', 'inbound') AND ztunnel_refused(error)
            AND start_time IS NOT NULL AND downstream_remote_address_ip IS NOT NULL AND downstream_local_address IS NOT NULL)
),
rounds(pos, k, us, refusal, partner, round) AS (
    SELECT pos, k, us, refusal, NULL::BIGINT, 0 FROM echoes
    UNION ALL
    (WITH open AS (SELECT * FROM rounds WHERE partner IS NULL),
     -- each open line's nearest open line of the other kind before it and after it (its key's lines by pos)
     around AS (
        SELECT pos, k, us, refusal,
               CASE WHEN refusal THEN max(CASE WHEN NOT refusal THEN pos END) OVER before
                    ELSE max(CASE WHEN refusal THEN pos END) OVER before END AS prev,
               CASE WHEN refusal THEN max(CASE WHEN NOT refusal THEN us END) OVER before
                    ELSE max(CASE WHEN refusal THEN us END) OVER before END AS prev_us,
               CASE WHEN refusal THEN min(CASE WHEN NOT refusal THEN pos END) OVER after
                    ELSE min(CASE WHEN refusal THEN pos END) OVER after END AS next,
               CASE WHEN refusal THEN min(CASE WHEN NOT refusal THEN us END) OVER after
                    ELSE min(CASE WHEN refusal THEN us END) OVER after END AS next_us
        FROM open
        WINDOW before AS (PARTITION BY k ORDER BY pos ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
               after AS (PARTITION BY k ORDER BY pos ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
     ),
     -- the nearer of the two within 2 s; at the same gap a 401 takes the refusal after it, a refusal
     -- the 401 before it
     choice AS (
        SELECT pos, k,
               CASE WHEN us - prev_us <= 2000000
                         AND (next_us - us > 2000000 OR next_us IS NULL OR us - prev_us < next_us - us
                              OR (us - prev_us = next_us - us AND refusal)) THEN prev
                    WHEN next_us - us <= 2000000 THEN next END AS best
        FROM around
     ),
     mutual AS (SELECT a.pos, a.k, a.best FROM choice a JOIN choice b ON b.pos = a.best AND b.best = a.pos)
     SELECT o.pos, o.k, o.us, o.refusal, m.best, o.round + 1
     FROM open o LEFT JOIN mutual m ON m.pos = o.pos
     -- (the rest of a key that paired in this round go on, up to 64 rounds: a key none of whose lines
     -- paired would choose the same again)
     WHERE m.best IS NOT NULL OR (o.round + 1 < 64 AND o.k IN (SELECT k FROM mutual)))
),
pairs AS (
    SELECT coalesce(r.source, '') AS source, r.line_number, r.start_time,
           coalesce(e.source, '') AS e_source, e.line_number AS e_line, e.start_time AS e_time
    FROM rounds p JOIN echoes e ON e.pos = p.pos JOIN echoes r ON r.pos = p.partner
    WHERE NOT p.refusal
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
