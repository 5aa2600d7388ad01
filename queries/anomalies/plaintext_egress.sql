-- title: Plaintext egress
-- description: HTTP requests that left the mesh unencrypted, judged by what leaves
--   (upstream_transport.sql, as the inventory's transport): an HTTP request whose upstream endpoint
--   port is in tls_ports (a ServiceEntry on port 80 with targetPort 443 and a DestinationRule
--   tls.mode SIMPLE: TLS origination) is TLS, not plaintext; its SNI is not (at an egress gateway
--   it is the sidecar's mTLS hop into the gateway). Blocked requests left nothing, nor did one the
--   proxy made no upstream connection for (a 503 UF, UH or DF: upstream_not_connected.sql).
-- @param since '' window start (ISO time); empty = 24 hours before the last egress request (the last record where none is egress)
-- @param until '' window end (ISO time, exclusive); empty = after the last egress request (the last record where none is egress)
-- @param baseline_start '' baseline start (ISO time); empty = the first egress request (the first record where none is egress)
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param tls_ports '443,8443' upstream ports that mean the proxy originated TLS
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
win AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1)
SELECT
    'plaintext_egress' AS kind,
    CASE
        WHEN EXISTS (SELECT 1 FROM base b WHERE b.destination = w.destination AND b.egress_kind <> 'blocked'
                     AND upstream_transport(request_protocol(b.protocol, b.method, b.authority), b.requested_server_name,
                                            b.upstream_cluster_direction, b.upstream_cluster_subset, b.upstream_host,
                                            b.upstream_host_port, $tls_ports, b.upstream_connected) = 'plaintext')
            THEN 'low'
        WHEN sum(w.bytes_received) > 0 THEN 'medium'
        ELSE 'low'
    END AS severity,
    string_agg(DISTINCT client_named(w.source_workload, w.source_ip), ',' ORDER BY client_named(w.source_workload, w.source_ip)) AS source,
    w.destination,
    {
        'requests': count(*),
        'upstream_ports': list_sort(list(DISTINCT w.upstream_host_port)),
        'methods': list_sort(list(DISTINCT w.method) FILTER (WHERE w.method IS NOT NULL)),
        'bytes_up': CAST(sum(w.bytes_received) AS BIGINT),  -- null: the format logs no bytes
        'first_seen': evidence_time(min(w.start_time)),
        'last_seen': evidence_time(max(w.start_time)),
        -- (the earliest, then the least id: min_by keeps the first three of its key as it reads, not sorting every row)
        'sample_request_ids': min_by(w.request_id, (w.start_time, w.request_id), 3) FILTER (WHERE w.request_id IS NOT NULL)
    } AS evidence,
    'Requests to ' || w.destination || ' leave the mesh in clear text: use https, or originate TLS at '
        || 'the egress (ServiceEntry targetPort 443 + DestinationRule tls.mode SIMPLE).' AS advice
FROM win w
WHERE w.egress_kind <> 'blocked'
  AND upstream_transport(request_protocol(w.protocol, w.method, w.authority), w.requested_server_name,
                         w.upstream_cluster_direction, w.upstream_cluster_subset, w.upstream_host,
                         w.upstream_host_port, $tls_ports, w.upstream_connected) = 'plaintext'
GROUP BY w.destination
ORDER BY count(*) DESC, w.destination
