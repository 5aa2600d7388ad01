-- ztunnel_hop_failed(error): whether ztunnel's `error` on a connection says its own hop failed: the
-- HBONE tunnel it opens to the next hop (an egress waypoint on port 15008) never carried the
-- connection, so the waypoint saw no request and logged none. ztunnel's errors (istio/ztunnel
-- src/proxy.rs, Error; src/proxy/pool.rs, the tunnel's connect) that say so: "io error: …" (the TCP
-- connect: "Connection refused (os error 111)", "No route to host (os error 113)", and in older builds its
-- 10 s connect timeout, "deadline has elapsed"; an error once bytes flow is wrapped
-- as "send: …" / "receive: …", src/copy.rs), "connection timed out, maybe a NetworkPolicy is blocking
-- HBONE port 15008: …" (that timeout in newer builds), "tls error: …" and "http2 handshake failed: …" (the
-- tunnel's mTLS and HTTP/2 set-up), "identity error: …" (the pool's new connection fetches ztunnel's
-- certificate first, src/proxy/pool.rs new_pool_conn: a CA that does not answer fails every hop), and the
-- pool's own refusals before it dials, "pool draining", "pool is already connecting" and "connection
-- streams maxed out" (src/proxy.rs, Error::WorkloadHBONEPool*). Not the hop's: "http status: …" (the waypoint answered the
-- CONNECT itself), "h2 failed: …", "send: …", "receive: …" (the tunnel was up: the waypoint had the
-- connection), a policy's refusal (ztunnel_denial) and the client's hang-up (ztunnel_failed). False
-- for a null error. traffic.sql counts such a failed hop to a waypoint as the egress row it
-- stands for, and any ztunnel connection whose error is one of these and that moved no byte as not
-- upstream_connected (a direct one too: its connect fails with the same "io error: …").
CREATE OR REPLACE MACRO ztunnel_hop_failed(error) AS (
    coalesce(regexp_matches(error, '^(io error: |connection timed out, maybe a NetworkPolicy is blocking HBONE port 15008|tls error: |http2 handshake failed: '
                         '|identity error: |pool draining$|pool is already connecting$|connection streams maxed out$)'), false)
);
