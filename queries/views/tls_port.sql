-- tls_port(port, tls_ports): whether port is one of tls_ports (text, comma-separated: the reports'
-- -p tls_ports, '443,8443' by default), the ports that mean TLS: an HTTP request the proxy sent on to
-- such an upstream port was TLS origination (upstream_transport.sql), a CONNECT tunnel to one carries
-- TLS (connection_protocol.sql). False, not null, for a null port.
CREATE OR REPLACE MACRO tls_port(port, tls_ports) AS (
    coalesce(list_contains(CAST(string_split(tls_ports, ',') AS INTEGER[]), port), false)
);
