-- upstream_transport(l7_protocol, requested_server_name, upstream_cluster_direction,
--                    upstream_cluster_subset, upstream_host, upstream_host_port, tls_ports,
--                    upstream_connected[, method, authority, upstream_cluster]):
-- how a request left the proxy that logged it, as the inventory's transport and plaintext_egress
-- judge it. One for which the proxy made no upstream connection (a response flag such as UF, UH or
-- DF: the traffic view's upstream_connected, upstream_not_connected.sql) is 'not-connected': nothing of it left, in clear text or not, though
-- the attempt is a fact (a 503 UF to a plaintext port read 'plaintext', and was plaintext_egress). An
-- HTTP request (l7_protocol: request_protocol.sql) was read by the proxy, so what it
-- sent on is told by the upstream endpoint's port: one of tls_ports (text, comma-separated) is
-- 'tls-origination' (a ServiceEntry on port 80 with targetPort 443 and a DestinationRule
-- tls.mode SIMPLE), any other 'plaintext', and null when it was never forwarded (no upstream host).
-- But one sent through PassthroughCluster or AllowAnyDynamicDNSCluster (given upstream_cluster) is
-- 'plaintext' whatever its port: no ServiceEntry, so no DestinationRule, and so no TLS origination
-- (a DestinationRule's TLS settings apply to the cluster of a host in the registry, outbound|PORT||HOST);
-- the proxy sent on to the address the app dialled the request it read in clear text (http://1.2.3.4:8443/
-- read tls-origination). The log shows no TLS the proxy originated itself (no %UPSTREAM_TRANSPORT_FAILURE_REASON%
-- on a request that connected), hence the port.
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
                                           upstream_connected, method := NULL, authority := NULL,
                                           upstream_cluster := NULL) AS (
    CASE
        WHEN NOT upstream_connected THEN 'not-connected'
        WHEN l7_protocol LIKE 'HTTP%' THEN
            CASE
                WHEN upstream_host IS NULL THEN NULL
                WHEN upstream_cluster IN ('PassthroughCluster', 'AllowAnyDynamicDNSCluster') THEN 'plaintext'
                WHEN tls_port(upstream_host_port, tls_ports) THEN 'tls-origination'
                ELSE 'plaintext'
            END
        ELSE lower(connection_protocol(requested_server_name, upstream_cluster_direction, upstream_cluster_subset,
                                       method := method, authority := authority, tls_ports := tls_ports))
    END
);
