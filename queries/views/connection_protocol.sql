-- connection_protocol(requested_server_name, upstream_cluster_direction, upstream_cluster_subset
--                     [, method, authority, tls_ports]):
-- what a connection the proxy passed through without reading it as HTTP (a TCP proxy) carried to the
-- destination: 'TLS' when its client asked the destination for a TLS server name (the SNI of its
-- ClientHello, which the proxy read and forwarded as it came) or it went through a waypoint's TLS
-- listener (inbound-vip|443|tls|HOST), else 'TCP' (no TLS seen: the proxy forwarded bytes it did not
-- read). Istio's own mTLS SNI (istio_sni_host.sql: outbound_.443_.cnn_.istio-egressgateway…) is no
-- such name: it is the SNI of the sidecar's mTLS hop into the proxy that logged the row, which
-- ended there (an egress gateway's server with tls.mode ISTIO_MUTUAL terminates it, Istio's egress
-- gateway for TCP traffic), and what the gateway forwarded is the client's own stream, of which the
-- log shows no TLS. A CONNECT tunnel (connect_tunnel.sql; method and authority given) is 'TLS' when
-- its authority's port is one of tls_ports ('443,8443' unless given: tls_port.sql), else 'TCP': the
-- proxy sees no ClientHello inside the tunnel, so no SNI tells, and the client does TLS there, not
-- the proxy. The inventory's protocol (for a row with no HTTP protocol), its transport and
-- plaintext_egress (upstream_transport.sql) and unregistered_egress's ServiceEntry protocol read it here.
CREATE OR REPLACE MACRO connection_protocol(requested_server_name, upstream_cluster_direction, upstream_cluster_subset,
                                            method := NULL, authority := NULL, tls_ports := '443,8443') AS (
    CASE
        WHEN connect_tunnel(method) THEN CASE WHEN tls_port(authority_port(authority), tls_ports) THEN 'TLS' ELSE 'TCP' END
        WHEN (requested_server_name IS NOT NULL AND istio_sni_host(requested_server_name) IS NULL)
             OR (upstream_cluster_direction = 'inbound-vip' AND upstream_cluster_subset = 'tls') THEN 'TLS'
        ELSE 'TCP'
    END
);
