-- title: Plaintext egress
-- description: HTTP requests that left the mesh unencrypted, judged by what leaves
--   (upstream_transport.sql, as the inventory's transport): an HTTP request whose upstream endpoint
--   port is in tls_ports (a ServiceEntry on port 80 with targetPort 443 and a DestinationRule
--   tls.mode SIMPLE: TLS origination; not through PassthroughCluster, where no DestinationRule
--   applies) is TLS, not plaintext; its SNI is not (at an egress gateway
--   it is the sidecar's mTLS hop into the gateway). Blocked requests left nothing, nor did one the
--   proxy made no upstream connection for (a 503 UF, UH or DF: upstream_not_connected.sql).
--   Low when the baseline sent the destination clear text too; high when the baseline reached it
--   with TLS alone (a downgrade: its headers, credentials too, now cross in clear text, whatever
--   the body); else medium when a body was sent, low when none was.
-- @param since '' window start (ISO time); empty = 24 hours before the last egress request (the last record where none is egress)
-- @param until '' window end (ISO time, exclusive); empty = after the last record (of any kind, not only the last egress request)
-- @param baseline_start '' baseline start (ISO time); empty = the first egress request (the first record where none is egress)
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param tls_ports '443,8443' upstream ports that mean the proxy originated TLS
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
win AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1),
-- how each destination left in the baseline: in clear text, with TLS (originated, or the client's)
base_transport AS (
    SELECT destination, bool_or(t = 'plaintext') AS plain, bool_or(t IN ('tls-origination', 'tls')) AS tls
    FROM (SELECT destination,
              upstream_transport(request_protocol(protocol, method, authority), requested_server_name,
                                 upstream_cluster_direction, upstream_cluster_subset, upstream_host,
                                 upstream_host_port, $tls_ports, upstream_connected,
                                 method := method, authority := authority,
                                 upstream_cluster := upstream_cluster) AS t  -- (a CONNECT to 443: tls)
          FROM base WHERE egress_kind <> 'blocked')
    GROUP BY destination
)
SELECT
    'plaintext_egress' AS kind,
    CASE
        WHEN bool_or(b.plain) THEN 'low'
        -- (a downgrade: what left with TLS in the baseline, and now leaves in clear text, headers and
        -- all, an API key's Authorization too, whatever its body: a GET's is 0 bytes, and it was low)
        WHEN bool_or(b.tls) THEN 'high'
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
    CASE WHEN bool_or(b.tls) AND NOT bool_or(b.plain)
        THEN 'Requests to ' || w.destination || ', which the baseline reached with TLS alone, now leave the mesh in '
             || 'clear text (a downgrade: a DestinationRule or ServiceEntry that no longer originates TLS, a client '
             || 'that calls http://): restore TLS (ServiceEntry targetPort 443 + DestinationRule tls.mode SIMPLE, or '
             || 'https in the client), and rotate any credential these requests carried.'
        ELSE 'Requests to ' || w.destination || ' leave the mesh in clear text: use https, or originate TLS at '
             || 'the egress (ServiceEntry targetPort 443 + DestinationRule tls.mode SIMPLE).' END AS advice
FROM win w
LEFT JOIN base_transport b ON b.destination = w.destination
WHERE w.egress_kind <> 'blocked'
  AND upstream_transport(request_protocol(w.protocol, w.method, w.authority), w.requested_server_name,
                         w.upstream_cluster_direction, w.upstream_cluster_subset, w.upstream_host,
                         w.upstream_host_port, $tls_ports, w.upstream_connected,
                         upstream_cluster := w.upstream_cluster) = 'plaintext'
GROUP BY w.destination
ORDER BY count(*) DESC, w.destination
