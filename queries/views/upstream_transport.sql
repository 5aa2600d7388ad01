-- upstream_transport(l7_protocol, requested_server_name, upstream_cluster_direction,
--                    upstream_cluster_subset, upstream_host, upstream_host_port, tls_ports,
--                    upstream_connected[, method, authority]):
-- how a request left the proxy that logged it, as the inventory's transport and plaintext_egress
-- judge it. One for which the proxy made no upstream connection (a response flag such as UF, UH or
-- DF: the traffic view's upstream_connected, upstream_not_connected.sql) is 'not-connected': nothing of it left, in clear text or not, though
-- the attempt is a fact (a 503 UF to a plaintext port read 'plaintext', and was plaintext_egress). An
-- HTTP request (l7_protocol: request_protocol.sql) was read by the proxy, so what it
-- sent on is told by the upstream endpoint's port: one of tls_ports (text, comma-separated) is
-- 'tls-origination' (a ServiceEntry on port 80 with targetPort 443 and a DestinationRule
-- tls.mode SIMPLE), any other 'plaintext', and null when it was never forwarded (no upstream host).
-- Its SNI tells nothing of that leg: it is the SNI of the connection into the proxy (at an egress
-- gateway, the sidecar's mTLS hop, outbound_.80_._.istio-egressgateway…). A connection the proxy
-- passed through (TCP) is 'tls' or 'tcp' as connection_protocol.sql says: TLS when its client asked
-- for a server name (not Istio's own mTLS SNI, of the hop into the proxy) or it is a waypoint's TLS
-- listener (inbound-vip|443|tls|HOST); so is a CONNECT tunnel (no l7_protocol: request_protocol.sql),
-- 'tls' when its authority's port is one of tls_ports, else 'tcp' (given method and authority; without,
-- 'tcp' for want of an SNI, and never 'plaintext' or 'tls-origination': the client's stream went
-- through, not HTTP the proxy read).
CREATE OR REPLACE MACRO upstream_transport(l7_protocol, requested_server_name, upstream_cluster_direction,
                                           upstream_cluster_subset, upstream_host, upstream_host_port, tls_ports,
                                           upstream_connected, method := NULL, authority := NULL) AS (
    CASE
        WHEN NOT upstream_connected THEN 'not-connected'
        WHEN l7_protocol LIKE 'HTTP%' THEN
            CASE
                WHEN upstream_host IS NULL THEN NULL
                WHEN tls_port(upstream_host_port, tls_ports) THEN 'tls-origination'
                ELSE 'plaintext'
            END
        ELSE lower(connection_protocol(requested_server_name, upstream_cluster_direction, upstream_cluster_subset,
                                       method := method, authority := authority, tls_ports := tls_ports))
    END
);
