-- request_protocol(protocol, method, authority): a row's protocol as logged (%PROTOCOL%: HTTP/1.1,
-- HTTP/2, ...), else 'HTTP' when the row has a method or an authority (an HTTP request, logged by a
-- custom format without %PROTOCOL%: it is no less HTTP for that), else null (TCP, or not known).
-- Queries that ask whether a row is HTTP read it here, not `protocol` alone.
CREATE OR REPLACE MACRO request_protocol(protocol, method, authority) AS (
    coalesce(protocol, CASE WHEN method IS NOT NULL OR authority IS NOT NULL THEN 'HTTP' END)
);
