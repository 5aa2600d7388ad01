-- request_protocol(protocol, method, authority): a row's protocol as logged (%PROTOCOL%: HTTP/1.1,
-- HTTP/2, ...), else 'HTTP' when the row has a method or an authority (an HTTP request, logged by a
-- custom format without %PROTOCOL%: it is no less HTTP for that), else null (TCP, or not known).
-- A CONNECT (connect_tunnel.sql) is null too: its HTTP request only opened a tunnel, and what the proxy
-- sent on is the client's own stream (TLS or TCP: connection_protocol.sql), whose duration is the
-- tunnel's life, not a request's latency.
-- Queries that ask whether a row is HTTP read it here, not `protocol` alone.
CREATE OR REPLACE MACRO request_protocol(protocol, method, authority) AS (
    CASE WHEN NOT connect_tunnel(method)
        THEN coalesce(protocol, CASE WHEN method IS NOT NULL OR authority IS NOT NULL THEN 'HTTP' END) END
);
