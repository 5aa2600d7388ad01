-- traffic: every access_log row with where it went, judged here (DESIGN.md: judgement in SQL, so
-- read and change it here); the egress view is its rows whose destination is outside the mesh
-- (egress_kind not null), and reports of every proxy (authz_denial) name destinations by it too.
-- All access_log columns, plus:
--   egress_kind          why the row is egress (the first rule that matches), null when it stays in
--                        the mesh (an inbound sidecar's request, a call to a *.svc host):
--     'blocked'          BlackHoleCluster (REGISTRY_ONLY, TCP/TLS) or route block_all (plain HTTP
--                        under REGISTRY_ONLY: 502 direct_response) to an address that is not
--                        internal, as for passthrough (an internal one is in-cluster traffic the
--                        registry or a Sidecar's scope left out: not egress, and no other kind); or no
--                        route at all (NR, no cluster, in the layouts of Istio before 1.3, which
--                        answered plain HTTP to an unknown host under REGISTRY_ONLY with 404 NR;
--                        since then a 404 NR is a VirtualService that matched no route) to a public address from
--                        a client that is not itself public (an ingress gateway on a public
--                        address answers the internet's scanners with 404 NR too);
--     'passthrough'      PassthroughCluster / AllowAnyDynamicDNSCluster (ALLOW_ANY) to an address
--                        that is not internal (FORMATS.md d: unknown in-cluster IPs land there too);
--     'registered'       outbound|PORT|SUBSET|HOST (or its DNS SRV form outbound_.PORT_.SUBSET_.HOST,
--                        an AUTO_PASSTHROUGH gateway's) where HOST is not in the mesh (mesh_host.sql:
--                        *.svc.<cluster domain>, or under a mesh_domains setting, none by default;
--                        Istio <= 1.7 multicluster's is global): a ServiceEntry, from a sidecar or gateway;
--                        and ztunnel's connection straight to such a HOST, its dst_service (below);
--     'waypoint'         inbound-vip|PORT|PROTO|HOST with such a HOST: egress through an ambient
--                        waypoint (downstream_local_address is the ServiceEntry VIP), unless the
--                        waypoint reaches that HOST's endpoints over HBONE (upstream_host
--                        envoy://connect_originate/IP:PORT, on any of its rows): they are mesh
--                        workloads (a ServiceEntry for an in-mesh service), so none of the HOST's
--                        rows leaves the mesh, its failed ones (no upstream) included; also
--                        ztunnel's failed hop to the waypoint, which the waypoint never logged
--                        (waypoint_hop and ztunnel_unconnected, below);
--     'public_ip'        any other row (not inbound) whose upstream_host is a public address.
--                        A CONNECT the proxy refused itself (connect_refused.sql: 403, 404, 407, no
--                        upstream host; an authorization policy's too: authz_denial's finding alone, of
--                        scope egress, as blocked_attempt leaves it out) is 'blocked' when its
--                        authority's host is not in the mesh (mesh_host) nor an internal address: nothing
--                        left, as for BlackHoleCluster. It comes before the cluster rules: Envoy logs the
--                        route's cluster (outbound|443||HOST) on a CONNECT it refused after routing it
--                        (RBAC's 403, upgrade_failed's), which was 'registered' as if it had gone out.
--   destination          host name when known (a CONNECT's authority's host, the tunnel's end: the
--                        proxy's cluster may be the next proxy's; else cluster HOST, else HTTP
--                        authority's host without its port: authority_host.sql), else TLS SNI (an Istio mTLS SNI,
--                        outbound_.8000_._.httpbin.foo.svc.cluster.local, by the service it names:
--                        istio_sni_host.sql), else ztunnel's dst_service, else destination_ip
--   destination_ip       upstream_host_ip, else downstream_local_address_ip (what the app dialled; not a
--                        CONNECT's, which dialled the proxy);
--                        IPv4-mapped IPv6 is shown as IPv4
--   destination_ip_kind  ip_kind(destination_ip): 'internal', 'service_vip', 'public'
--   destination_port     a CONNECT's authority's port, else the cluster's service port, else the port
--                        the app dialled
--   source_ip            downstream_remote_address_ip (the client's IP, always); IPv4-mapped IPv6 as IPv4
--   source_workload      the workload that held source_ip at start_time (client_workloads.sql:
--                        namespace/owner by --pods, else as ztunnel's lines name it), else null
--   source_owner         the workload the anomaly reports judge the client by (whether the baseline
--                        knew it): --pods' namespace/owner as it is, ztunnel's pod name without the
--                        parts Kubernetes generates (client_workload.sql); null with source_workload
--   upstream_connected   false when the proxy made no upstream connection for the row, as its
--                        response flags say (UF, UH, NC, NR, DF, DO, UAEX; a TCP row only when it
--                        moved no byte: upstream_not_connected.sql), or an RBAC filter denied it
--                        with no upstream host logged (rbac_denial: HTTP's 403 rbac_access_denied…,
--                        no flag, answered before the router; a TCP connection's
--                        connection_termination_details rbac_access_denied…, network RBAC closing it
--                        on its first bytes before tcp_proxy's connect came back, which the close
--                        cancels: tcp_proxy.cc logs the upstream host when its pool connects or
--                        fails, onPoolReady/onPoolFailure; it starts connecting at once, before
--                        RBAC's verdict, envoyproxy/envoy#9023, so a denied connection that logged an
--                        upstream host had connected), or
--                        the proxy answered it itself (route
--                        block_all's 502, as BlackHoleCluster's UH; a redirect or directResponse:
--                        details direct_response), or it refused a CONNECT (connect_refused.sql; a
--                        CONNECT's flags tell as an HTTP request's do: the 91 bytes of a 503 UF
--                        are Envoy's own reply), or, on a ztunnel row, when its error
--                        says its connection never came up and it moved no byte (ztunnel_hop_failed,
--                        ztunnel_carried_nothing: refused, timed out, its tunnel's TLS or HTTP/2
--                        set-up failed; ztunnel logs no flag), or when an authorization policy
--                        refused it before it came up (ztunnel_refused: the destination's ztunnel's
--                        "connection closed due to policy rejection…", and the client's outbound
--                        line for it, "http status: 401 Unauthorized"), else true: it connected, or
--                        nothing says it did not. Of an HTTP request Envoy retried, the line tells
--                        the last attempt only (each attempt replaces the stream's upstream info:
--                        %UPSTREAM_HOST% and %UPSTREAM_LOCAL_ADDRESS% are the last's, and the router
--                        sets UF once, when it gives up), so UF,URX is not connected: the last
--                        attempt failed to connect and the retries ran out; an earlier attempt that
--                        connected and was answered with a retriable 503 (Istio's default retry_on has
--                        retriable-status-codes beside connect-failure) is not in the log, and a
--                        %UPSTREAM_HOST% on the line is the host the last attempt tried, not one it
--                        reached. URX without UF (the last attempt was answered) connected. A TCP
--                        connection's UF,URX (tcp_proxy's max_connect_attempts ran out; it stops
--                        retrying once connected) never connected, and moved no byte.
--                        Queries read this, not the flags, for whether anything left.
-- ztunnel rows (log_format ztunnel*) have no cluster: a hop to a mesh workload (dst_workload or
-- dst_identity logged, or HBONE's port 15008: a waypoint, a pod, a remote network's east-west
-- gateway), an inbound one, or one to a service in the mesh (mesh_host) is not counted, whatever its address (pods may
-- have public IPv6 addresses), so that the waypoint's own line is the one egress row per request; a
-- ztunnel connection straight to a ServiceEntry host (a dst_service outside the mesh; no dst.hbone_addr
-- other than dst.addr, which a hop to a waypoint has) is 'registered', whatever its address (a
-- sidecar's outbound|…|HOST is, an on-prem 10.x host too), and one to a public address that names
-- no dst_service is 'public_ip'. A ServiceEntry's endpoint is no
-- mesh workload, though ztunnel logs one as dst_workload: istiod hands ztunnel a ServiceEntry's
-- endpoints (a DNS one's implicit endpoint too) as workloads named after the ServiceEntry (istio/istio
-- pilot/pkg/serviceregistry/kube/controller/ambient/workloads.go, serviceEntryWorkloadBuilder), so a
-- dst_workload counts only with no dst_service, or one of the mesh (mesh_host, or a ServiceEntry host
-- of mesh workloads, as for 'waypoint'); plain TCP to it logs no dst_identity (mTLS only). But a ztunnel hop that failed
-- (ztunnel_hop_failed: refused, timed out, its tunnel's TLS or HTTP/2 set-up failed) and moved no
-- byte, outbound to port 15008 with a dst_service outside the mesh (and not a ServiceEntry host of
-- mesh workloads, as for 'waypoint') and a dialled address (dst.hbone_addr, the ServiceEntry VIP)
-- other than the hop's (dst.addr, the waypoint; a hop straight to a workload dials the workload) is
-- 'waypoint' too: the waypoint never had the connection and logged nothing, so that row is the one
-- egress row of the attempt (istio/ztunnel src/proxy/outbound.rs: to a service's waypoint, dst.addr
-- is the waypoint on 15008, dst.hbone_addr the address dialled, dst.service the ServiceEntry host,
-- dst.workload the waypoint). Its destination is that host and port, its destination_ip the
-- waypoint's. A failure the waypoint answered ("http status: 503 …") stays ztunnel's hop: the
-- waypoint had the connection and its own line tells. Such a hop, as any ztunnel connection that
-- never came up, is not upstream_connected.
-- A wildcard ServiceEntry host (*.example.com) names no destination: the request's authority or SNI
-- does (en.wikipedia.org, not *.wikipedia.org), so that a new subdomain is a new destination.
-- Settings (logpipe.toml / env / flags): cluster domain and mesh domains in logpipe_settings, ranges
-- in logpipe_cidrs.
CREATE OR REPLACE VIEW traffic AS
-- IP judgement once per distinct address, not once per row.
WITH meshed AS (
    -- ServiceEntry hosts whose waypoint tunnels to their endpoints over HBONE: mesh workloads
    SELECT DISTINCT lower(upstream_cluster_host) AS host
    FROM access_log
    WHERE upstream_cluster_direction = 'inbound-vip' AND upstream_host LIKE 'envoy://%connect_originate/%'
      AND upstream_cluster_host IS NOT NULL  -- (a NULL here would make every IN below NULL)
),
hosts AS (
    -- each cluster host once, whether it is in the mesh: mesh_host's list and lambda once per host,
    -- not per row (10M rows: 1.6 → 0.4 s of CPU for the row's judgement)
    SELECT host, mesh_host(host, s.cluster_domain, s.mesh_domains) AS in_mesh
    FROM (SELECT DISTINCT upstream_cluster_host AS host FROM access_log WHERE upstream_cluster_host IS NOT NULL)
    CROSS JOIN logpipe_settings AS s
),
ips AS (
    SELECT ip, ip_norm(ip) AS norm, ip_kind(ip) AS kind
    FROM (  -- (the three addresses a row is judged by, in one scan: each combination of them once)
        SELECT DISTINCT unnest([coalesce(u, d), u, r]) AS ip
        FROM (SELECT DISTINCT upstream_host_ip AS u, downstream_local_address_ip AS d,
                     downstream_remote_address_ip AS r FROM access_log)
    )
    WHERE ip IS NOT NULL
),
addressed AS (
    SELECT
        a.*,
        d.norm AS destination_ip,
        d.kind AS destination_ip_kind,
        u.kind AS upstream_ip_kind,
        c.kind AS source_ip_kind,
        c.norm AS source_ip,
        w.workload AS source_workload,
        w.owner AS source_owner,
        -- (ztunnel's columns judged on its rows only: a CASE evaluates its branch for the rows that
        -- take it, where AND evaluated mesh_host's list and lambda, and the error's patterns, on every
        -- row; false elsewhere, which both columns' readers take their null for)
        CASE WHEN a.log_format LIKE 'ztunnel%' THEN a.dst_identity IS NOT NULL
            OR a.upstream_host_port = 15008 OR a.direction = 'inbound'
            OR mesh_host(a.dst_service, s.cluster_domain, s.mesh_domains)
            -- (a workload, but not a ServiceEntry's endpoint: its dst_service is the entry's host)
            OR (a.dst_workload IS NOT NULL
                AND (a.dst_service IS NULL OR lower(a.dst_service) IN (SELECT host FROM meshed)))
            ELSE false END AS ztunnel_in_mesh,
        -- (a hop to an egress waypoint: outbound to 15008, dialling another address, a ServiceEntry
        -- host outside the mesh; 'waypoint' when it also never came up, ztunnel_unconnected)
        CASE WHEN a.log_format LIKE 'ztunnel%' THEN a.direction = 'outbound' AND a.upstream_host_port = 15008
            AND a.downstream_local_address_ip IS DISTINCT FROM a.upstream_host_ip
            AND a.downstream_local_address_ip IS NOT NULL
            AND NOT coalesce(mesh_host(a.dst_service, s.cluster_domain, s.mesh_domains), true)
            AND lower(a.dst_service) NOT IN (SELECT host FROM meshed) ELSE false END AS waypoint_hop,
        -- (a ztunnel connection that never came up: its upstream_connected is false, as a UF's is)
        CASE WHEN a.log_format LIKE 'ztunnel%' THEN ztunnel_carried_nothing(a.error, a.bytes_received, a.bytes_sent)
            AND ztunnel_hop_failed(a.error) ELSE false END AS ztunnel_unconnected,
        -- (a refused CONNECT: whether its authority's host is outside the mesh and not an internal
        -- address, as a BlackHoleCluster row's address must be; null for any other row)
        CASE WHEN connect_refused(a.method, a.response_code, a.upstream_host)
            THEN NOT coalesce(mesh_host(authority_host(a.authority), s.cluster_domain, s.mesh_domains), true)
                 AND ip_kind(authority_host(a.authority)) IS DISTINCT FROM 'internal' END AS connect_blocked,
        a.upstream_cluster_direction IN ('outbound', 'inbound-vip') AS has_cluster_host,
        h.in_mesh
            OR (a.upstream_cluster_direction = 'inbound-vip'
                AND lower(a.upstream_cluster_host) IN (SELECT host FROM meshed)) AS stays_in_mesh
    FROM access_log AS a
    -- (a CONNECT dialled the proxy: its destination is the tunnel's end, not downstream_local_address)
    LEFT JOIN ips AS d ON d.ip = coalesce(a.upstream_host_ip,
                                          CASE WHEN NOT connect_tunnel(a.method) THEN a.downstream_local_address_ip END)
    LEFT JOIN ips AS u ON u.ip = a.upstream_host_ip
    LEFT JOIN ips AS c ON c.ip = a.downstream_remote_address_ip
    LEFT JOIN client_workloads AS w ON w.ip = c.norm
         AND a.start_time >= coalesce(w.valid_from, '-infinity'::TIMESTAMPTZ)
         AND a.start_time < coalesce(w.valid_until, 'infinity'::TIMESTAMPTZ)
    LEFT JOIN hosts AS h ON h.host = a.upstream_cluster_host
    CROSS JOIN logpipe_settings AS s
),
judged AS (
    SELECT
        *,
        CASE
            WHEN upstream_cluster = 'BlackHoleCluster' OR route_name = 'block_all'
                THEN CASE WHEN destination_ip_kind IS DISTINCT FROM 'internal' THEN 'blocked' END
            WHEN connect_blocked IS NOT NULL THEN CASE WHEN connect_blocked THEN 'blocked' END
            WHEN upstream_cluster IS NULL AND list_contains(response_flags, 'NR')
                AND log_format IN ('envoy', 'istio_1_1_pre', 'istio_1_1', 'istio_1_2', 'istio_json_1_1')
                AND destination_ip_kind = 'public' AND source_ip_kind IS DISTINCT FROM 'public' THEN 'blocked'
            WHEN upstream_cluster IN ('PassthroughCluster', 'AllowAnyDynamicDNSCluster')
                THEN CASE WHEN destination_ip_kind IS DISTINCT FROM 'internal' THEN 'passthrough' END
            WHEN upstream_cluster_direction = 'outbound' AND upstream_cluster_host IS NOT NULL
                AND NOT stays_in_mesh THEN 'registered'
            WHEN upstream_cluster_direction = 'inbound-vip' AND upstream_cluster_host IS NOT NULL
                AND NOT stays_in_mesh THEN 'waypoint'
            WHEN waypoint_hop AND ztunnel_unconnected THEN 'waypoint'
            WHEN log_format LIKE 'ztunnel%' AND dst_service IS NOT NULL AND NOT coalesce(ztunnel_in_mesh, false)
                AND (downstream_local_address_ip IS NULL OR downstream_local_address_ip = upstream_host_ip)
                THEN 'registered'
            WHEN coalesce(upstream_cluster_direction, '') NOT IN ('inbound', 'inbound-vip', 'outbound')
                AND coalesce(upstream_cluster, '') NOT LIKE 'InboundPassthroughCluster%'
                AND NOT coalesce(ztunnel_in_mesh, false)
                AND upstream_ip_kind = 'public' THEN 'public_ip'
        END AS egress_kind
    FROM addressed
)
SELECT
    * EXCLUDE (upstream_ip_kind, source_ip_kind, source_ip, source_workload, source_owner, ztunnel_in_mesh, waypoint_hop, ztunnel_unconnected,
               has_cluster_host, connect_blocked,
               stays_in_mesh),
    coalesce(
        CASE WHEN connect_tunnel(method) THEN authority_host(authority) END,
        CASE WHEN has_cluster_host AND NOT starts_with(upstream_cluster_host, '*') THEN lower(upstream_cluster_host) END,
        authority_host(authority),
        coalesce(istio_sni_host(requested_server_name), lower(requested_server_name)),
        lower(dst_service),
        destination_ip
    ) AS destination,
    coalesce(
        CASE WHEN connect_tunnel(method) THEN authority_port(authority) END,
        CASE WHEN has_cluster_host THEN upstream_cluster_port END,
        downstream_local_address_port,
        upstream_host_port
    ) AS destination_port,
    source_ip,
    source_workload,
    source_owner,
    NOT (upstream_not_connected(response_flags,
                                CASE WHEN connect_tunnel(method) THEN 'HTTP' ELSE request_protocol(protocol, method, authority) END,
                                bytes_received, bytes_sent)
         OR connect_refused(method, response_code, upstream_host)
         OR (rbac_denial(response_code_details, connection_termination_details) AND upstream_host IS NULL)
         OR ztunnel_unconnected OR ztunnel_refused(error)
         OR coalesce(route_name = 'block_all' OR response_code_details = 'direct_response', false)) AS upstream_connected
FROM judged;
