-- connect_tunnel(method): whether a row is an HTTP CONNECT, a client's request that the proxy open a
-- tunnel to the authority's host:port (egress proxies, Envoy's upgrade_configs CONNECT, an Istio
-- egress gateway or a corporate proxy in front of one): Envoy logs it as `"CONNECT - HTTP/1.1" 200`
-- (HTTP/2's CONNECT has no :path either), %REQ(:AUTHORITY)% host:port, %UPSTREAM_HOST% the host it
-- connected to, %BYTES_RECEIVED%/%BYTES_SENT% the tunnel's payload, %DURATION% the tunnel's life.
-- Terminating it, the router strips the headers and sends the payload on as raw TCP (Envoy's docs,
-- HTTP upgrades: CONNECT support), so what left is the client's own stream: TLS when it speaks TLS to
-- host:443, not HTTP the proxy read (request_protocol.sql, connection_protocol.sql). An HTTP/2
-- extended CONNECT (RFC 8441, :protocol websocket) is no such tunnel: Envoy's codec turns it back into
-- an HTTP/1 Upgrade GET before any filter sees it (http2/codec_impl.cc, ServerStreamImpl::decodeHeaders).
-- False, not null, for a row without a method.
CREATE OR REPLACE MACRO connect_tunnel(method) AS (
    coalesce(method = 'CONNECT', false)
);
