-- title: What REGISTRY_ONLY would block
-- description: Every destination the proxies reached through PassthroughCluster (or
--   AllowAnyDynamicDNSCluster): hosts with no Service or ServiceEntry, which ALLOW_ANY lets through
--   and outboundTrafficPolicy REGISTRY_ONLY blocks (istio.io, Accessing External Services). Unlike
--   the inventory and the egress view, it keeps passthrough to internal addresses (address_kind
--   internal: a VPC database, an on-premises host, a pod or ClusterIP a Sidecar's scope left out),
--   since REGISTRY_ONLY blocks those too. Per destination and port: protocol, TLS server names asked
--   for, requests, bytes, first and last seen, and the sources calling it (IPs, or namespace/owner
--   with --pods).
-- @param since '' window start (ISO time); empty = the data's first record
-- @param until '' window end (ISO time, exclusive); empty = after the last record
SELECT
    destination,
    destination_port AS port,
    mode(coalesce(request_protocol(protocol, method, authority),
                  connection_protocol(requested_server_name, upstream_cluster_direction,
                                      upstream_cluster_subset))) AS protocol,
    string_agg(DISTINCT destination_ip_kind, ',' ORDER BY destination_ip_kind) AS address_kind,
    count(*) AS requests,
    CAST(sum(bytes_received) AS BIGINT) AS bytes_up,
    CAST(sum(bytes_sent) AS BIGINT) AS bytes_down,
    min(start_time) AS first_seen,
    max(start_time) AS last_seen,
    count(DISTINCT source_ip) AS source_count,
    list_sort(list(DISTINCT source_ip)) AS sources,
    string_agg(DISTINCT requested_server_name, ',' ORDER BY requested_server_name)
        FILTER (WHERE istio_sni_host(requested_server_name) IS NULL) AS sni
FROM traffic
WHERE upstream_cluster IN ('PassthroughCluster', 'AllowAnyDynamicDNSCluster')
  AND (start_time >= coalesce(CAST(nullif($since, '') AS TIMESTAMPTZ), '-infinity'::TIMESTAMPTZ)
       AND start_time < coalesce(CAST(nullif($until, '') AS TIMESTAMPTZ), 'infinity'::TIMESTAMPTZ)
       -- rows without a time (a format with no %START_TIME%) belong to no window but the whole data's
       OR (start_time IS NULL AND coalesce($since, '') = '' AND coalesce($until, '') = ''))
GROUP BY destination, destination_port
ORDER BY requests DESC, destination, port
