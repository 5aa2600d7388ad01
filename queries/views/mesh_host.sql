-- mesh_host(host, cluster_domain, mesh_domains): whether a service host name is inside the mesh: a
-- Kubernetes Service (svc.<cluster domain> and the names under it) or a name under one of
-- mesh_domains (the setting of that name, logpipe/settings.py: none by default; an Istio <= 1.7
-- multicluster mesh sets `global`, the suffix of services in other clusters,
-- global.multiCluster.globalDomainSuffix, which the istio.io "replicated control planes" guide
-- registers as MESH_INTERNAL ServiceEntries `<name>.<namespace>.global`). Null for a null host.
-- traffic.sql judges cluster hosts and ztunnel's dst_service by it.
CREATE OR REPLACE MACRO mesh_host(host, cluster_domain, mesh_domains) AS (
    list_bool_or(list_transform(list_append(mesh_domains, 'svc.' || cluster_domain),
                                lambda d: lower(host) = d OR ends_with(lower(host), '.' || d)))
);
