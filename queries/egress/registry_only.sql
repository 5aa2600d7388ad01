-- title: What REGISTRY_ONLY would block
-- description: Every destination the proxies reached through PassthroughCluster (or
--   AllowAnyDynamicDNSCluster): hosts with no Service or ServiceEntry, which ALLOW_ANY lets through
--   and outboundTrafficPolicy REGISTRY_ONLY blocks (istio.io, Accessing External Services). Unlike
--   the inventory and the egress view, it keeps passthrough to internal addresses (address_kind
--   internal: a VPC database, an on-premises host, a pod or ClusterIP a Sidecar's scope left out),
--   since REGISTRY_ONLY blocks those too. Per destination and port: protocol, TLS server names asked
--   for, requests, bytes, first and last seen, the sources calling it (IPs, or namespace/owner
--   with --pods), and the ServiceEntry that would register it (service_entry: YAML, as the
--   unregistered_egress finding gives it; `logpipe query service_entries --out FILE.yaml` writes them
--   all as one file). It is null where nothing safe can be written (a name that is no DNS name) or
--   registering would not help (every request failed DNS resolution, flag DF). An internal address
--   gets one too, MESH_EXTERNAL (a host outside the mesh, such as a VPC database), under a comment: a
--   pod or Service of the cluster that ended in PassthroughCluster needs the proxy's view fixed
--   (a Sidecar's egress hosts, exportTo), not a ServiceEntry. Review each before applying.
-- @param since '' window start (ISO time); empty = the data's first record
-- @param until '' window end (ISO time, exclusive); empty = after the last record
-- (the rows: queries/views/passthrough_destinations.sql)
SELECT * FROM passthrough_destinations($since, $until)
ORDER BY requests DESC, destination, port
