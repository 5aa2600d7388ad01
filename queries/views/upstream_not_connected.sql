-- upstream_not_connected(response_flags, l7_protocol, bytes_received, bytes_sent): whether the proxy
-- that logged a request or connection made no upstream connection for it, as its response flags say
-- (FORMATS.md c, Envoy's ResponseFlagUtils and usage.rst): UF (UpstreamConnectionFailure: the connect
-- was refused or timed out), UH (NoHealthyUpstream: no endpoint to connect to), NC (NoClusterFound),
-- NR (NoRouteFound: no route, or no filter chain), DF (DnsResolutionFailed: the name gave no address,
-- AllowAnyDynamicDNSCluster's 503), DO (DropOverload: dropped before it was sent) and UAEX
-- (UnauthorizedExternalService: the ext_authz filter denied it, before the router). Envoy's router
-- sets a flag once, when it gives up (router.cc, onUpstreamAbort): the attempt that failed was the
-- last, and the line's upstream fields are that attempt's too (each attempt's UpstreamRequest gives the
-- stream a new upstream info: %UPSTREAM_HOST% is the host it tried, %UPSTREAM_LOCAL_ADDRESS% "-" when
-- it never connected). Not these: URX (retries exhausted, router.cc on RetryStatus::NoRetryLimitExceeded:
-- alone, the last attempt connected and was answered 5xx; with UF it is UF's: the last attempt did not
-- connect. An earlier attempt is not logged: one answered with a retriable 503 did connect, and the
-- line cannot show it; a %UPSTREAM_HOST% beside UF,URX is no sign of it), UO (a circuit breaker's
-- overflow, also set when a retry overflowed after an attempt that connected), UT, UC, UR, LR (a
-- timeout or reset of a request that may have been sent).
-- A connection the proxy passed through (TCP, not HTTP) that moved a byte either way did connect:
-- tcp_proxy sets UF on each failed connect attempt and may connect on the next (max_connect_attempts,
-- tcp_proxy.cc onUpstreamEvent), and reads nothing from its client before it connects (unless told
-- to receive before connect), so it is not one. An HTTP
-- request's bytes tell nothing of it: bytes_received is the body the proxy read from its client
-- (buffered while it connects) and bytes_sent counts its own reply (the 91 bytes of "upstream connect
-- error or disconnect/reset before headers. reset reason: connection failure").
-- Never null: a TCP row has no l7_protocol (null LIKE … is null), and a null here made such a row that
-- moved bytes neither connected nor not (the baseline's reached left it out: a destination reached so
-- was new_destination again when the window reached it).
-- The traffic view judges it once per row, as its column upstream_connected (traffic.sql), which the
-- queries read (the inventory's transport 'not-connected', upstream_transport.sql; the anomalies).
CREATE OR REPLACE MACRO upstream_not_connected(response_flags, l7_protocol, bytes_received, bytes_sent) AS (
    coalesce(list_has_any(response_flags, ['UF', 'UH', 'NC', 'NR', 'DF', 'DO', 'UAEX']), false)
    AND (coalesce(l7_protocol LIKE 'HTTP%', false) OR coalesce(bytes_received, 0) + coalesce(bytes_sent, 0) = 0)
);
