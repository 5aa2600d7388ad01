-- service_entry_protocol(protocol, method, authority, requested_server_name, upstream_cluster_direction,
-- upstream_cluster_subset): an aggregate, over a destination's rows, of the protocol its ServiceEntry port
-- declares (service_entry_yaml_ports.sql): HTTP2 when any request was HTTP/2, else HTTP when any was HTTP (a method
-- or authority without %PROTOCOL%: request_protocol.sql), else TLS when any connection asked for a
-- server name or was a CONNECT tunnel to a TLS port (connection_protocol.sql), else TCP. The unregistered_egress finding and the
-- registry_only query read it alike.
CREATE OR REPLACE MACRO service_entry_protocol(protocol, method, authority, requested_server_name,
                                               upstream_cluster_direction, upstream_cluster_subset) AS (
    CASE
        WHEN bool_or(request_protocol(protocol, method, authority) LIKE 'HTTP/2%') THEN 'HTTP2'
        WHEN bool_or(request_protocol(protocol, method, authority) LIKE 'HTTP%') THEN 'HTTP'
        WHEN bool_or(connection_protocol(requested_server_name, upstream_cluster_direction,
                                         upstream_cluster_subset, method := method, authority := authority) = 'TLS') THEN 'TLS'
        ELSE 'TCP'
    END
);
