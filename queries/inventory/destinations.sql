-- title: External destinations
-- description: One row per external destination (host, or the IP when no name is known), port and
--   way out (egress_kind). Transport is judged by the leg that leaves the
--   mesh: an HTTP request whose upstream endpoint port is in tls_ports is TLS origination, not
--   plaintext; one the proxy made no upstream connection for (UF, UH, DF, …: upstream_not_connected.sql)
--   is not-connected, as nothing of it left; a request never forwarded (denied, no upstream) does not
--   count, nor an HTTP request of a format that logs no upstream host (its transport is not known). A connection that was not
--   HTTP is TLS (protocol and transport alike) when its client asked for a server name or it went
--   through a waypoint's TLS listener, not for Istio's own mTLS SNI (connection_protocol.sql). A
--   connection ztunnel logged as failed that moved no byte (its failed hop to an egress waypoint, or
--   one straight to a public address, refused or timed out) carried nothing, so it tells neither
--   (ztunnel_carried_nothing.sql): a destination of such rows alone has neither. A request with a method or
--   authority is HTTP though its format has no %PROTOCOL% (request_protocol.sql). Error share counts
--   4xx, 5xx, failure response flags and connections refused by policy (a TCP RBAC denial at a
--   waypoint or sidecar, ztunnel's policy rejection: is_error.sql, as top_destinations does: a
--   denial is no success, as an HTTP RBAC 403 is a 4xx), and ztunnel's connections that failed
--   (its `error`: refused, timed out); such a refusal or failure is in none of errors_4xx,
--   errors_5xx, flagged. Bytes a format does not log are null (not
--   known), not 0. sni lists the TLS server names clients asked for; Istio's own mTLS SNI (the hop
--   of a sidecar into an egress gateway: outbound_.PORT_.SUBSET_.HOST, istio_sni_host.sql) is none.
-- @column protocol what it carried, the most common among its rows: the HTTP version (HTTP when the
--   format logs none), TLS (a connection whose client asked for a TLS server name, or through a
--   waypoint's TLS listener), TCP (a connection with no TLS seen); empty: not known (ztunnel's failed
--   connections, which carried nothing)
-- @column egress_kind how it leaves the mesh: waypoint (through an ambient egress
--   waypoint), registered (a ServiceEntry, from a sidecar, a gateway or ztunnel), passthrough (no ServiceEntry:
--   PassthroughCluster under ALLOW_ANY), blocked (BlackHoleCluster or route block_all under
--   REGISTRY_ONLY: nothing left), public_ip (no cluster says which: a public upstream address)
-- @column error_share share of its requests that failed or were refused: 4xx, 5xx, a failure response
--   flag, a connection refused by policy or one that ztunnel logged as failed
-- @column flagged requests with a failure response flag (failure_flags: the proxy could not complete
--   the request, e.g. UF connect failure, UH no healthy host, UT timeout, DF DNS failure)
-- @column source_count clients that called it (sources lists them: IPs, or workloads)
-- @column transport how the proxy sent it on, judged by its requests that connected upstream:
--   plaintext (HTTP sent on in clear, by any of them), tls-origination (HTTP the proxy sent on over
--   TLS: an upstream port in tls_ports), tls (a connection whose client asked for a TLS server name),
--   tcp (a connection with no TLS seen), else the most common of these; not-connected (none connected:
--   each failed with a response flag that means no upstream connection was made, UF connect failure,
--   UH no healthy upstream, NC, NR, DF DNS failure or DO, which error_share and flagged count, or an
--   authorization policy refused it before any upstream host: an RBAC 403, UAEX, an L4 policy's
--   rbac_access_denied… connection; a TCP connection that moved bytes did connect), blocked (nothing left); empty: not known (never
--   forwarded, the format logs no upstream host, or a connection ztunnel logged as failed, which
--   carried nothing)
-- @column sni TLS server names the clients asked for (not Istio's own mTLS SNI)
-- @param since '' window start (ISO time); empty = the data's first record
-- @param until '' window end (ISO time, exclusive); empty = after the last record
-- @param tls_ports '443,8443' upstream ports that mean the proxy originated TLS for an HTTP request, and that a CONNECT tunnel carried TLS
-- @param failure_flags 'UF,URX,UH,UO,NR,UT,UC,LR,UR,DF' response flags that count as errors
WITH win AS (
    SELECT *,
        request_protocol(protocol, method, authority) AS l7_protocol
    FROM egress
    WHERE start_time >= coalesce(CAST(nullif($since, '') AS TIMESTAMPTZ), '-infinity'::TIMESTAMPTZ)
      AND start_time < coalesce(CAST(nullif($until, '') AS TIMESTAMPTZ), 'infinity'::TIMESTAMPTZ)
       -- rows without a time (a format with no %START_TIME%) belong to no window but the whole data's
       OR (start_time IS NULL AND coalesce($since, '') = '' AND coalesce($until, '') = '')
),
judged AS (
    SELECT *,
        -- (a connection ztunnel logged as failed that moved no byte tells neither: not known)
        CASE WHEN NOT ztunnel_carried_nothing(error, bytes_received, bytes_sent)
            THEN coalesce(l7_protocol, connection_protocol(requested_server_name, upstream_cluster_direction,
                                                           upstream_cluster_subset, method := method,
                                                           authority := authority, tls_ports := $tls_ports))
        END AS row_protocol,
        CASE
            WHEN egress_kind = 'blocked' THEN 'blocked'
            WHEN ztunnel_carried_nothing(error, bytes_received, bytes_sent) THEN NULL
            ELSE upstream_transport(l7_protocol, requested_server_name, upstream_cluster_direction,
                                    upstream_cluster_subset, upstream_host, upstream_host_port, $tls_ports,
                                    upstream_connected, method := method, authority := authority,
                                    upstream_cluster := upstream_cluster)
        END AS transport,
        response_code >= 400 AND response_code < 500 AS is_4xx,
        response_code >= 500 AS is_5xx,
        has_failure_flag(response_flags, $failure_flags) AS is_flagged,
        is_error(response_code, response_flags, $failure_flags, connection_termination_details, error) AS is_failed
    FROM win
)
SELECT
    destination_named(destination) AS destination,
    destination_port AS port,
    most_common(row_protocol) AS protocol,  -- (ties to the least: most_common.sql)
    egress_kind,
    count(*) AS requests,
    CAST(sum(bytes_received) AS BIGINT) AS bytes_up,
    CAST(sum(bytes_sent) AS BIGINT) AS bytes_down,
    round(avg(CASE WHEN is_failed THEN 1.0 ELSE 0.0 END), 4) AS error_share,
    count(*) FILTER (WHERE is_4xx) AS errors_4xx,
    count(*) FILTER (WHERE is_5xx) AS errors_5xx,
    count(*) FILTER (WHERE is_flagged) AS flagged,
    CAST(quantile_cont(duration, 0.50) AS BIGINT) AS p50_ms,
    CAST(quantile_cont(duration, 0.95) AS BIGINT) AS p95_ms,
    CAST(quantile_cont(duration, 0.99) AS BIGINT) AS p99_ms,
    evidence_time(min(start_time)) AS first_seen,
    evidence_time(max(start_time)) AS last_seen,
    -- (each client listed, one that is not in the logs too: client_named.sql)
    count(DISTINCT client_named(source_workload, source_ip)) AS source_count,
    clients_named(list(DISTINCT client_named(source_workload, source_ip))) AS sources,
    -- (plaintext when any request left in clear text; else the most common way its rows that connected
    -- went; not-connected only when none did: a destination reached over TLS once is no failed one)
    CASE WHEN bool_or(transport = 'plaintext') THEN 'plaintext'
        ELSE coalesce(most_common(CASE WHEN transport <> 'not-connected' THEN transport END), most_common(transport)) END AS transport,
    -- (an Istio mTLS SNI, outbound_.80_._.istio-egressgateway…, is the mesh's own hop into the proxy
    -- that logged the row, not a name the destination was asked for: istio_sni_host.sql)
    string_agg(DISTINCT requested_server_name, ',' ORDER BY requested_server_name)
        FILTER (WHERE istio_sni_host(requested_server_name) IS NULL) AS sni
FROM judged
GROUP BY destination, destination_port, egress_kind
ORDER BY requests DESC, destination, port, egress_kind
