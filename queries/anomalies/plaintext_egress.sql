-- title: Plaintext egress
-- description: HTTP requests that left the mesh unencrypted, judged by what leaves: an HTTP
--   request whose upstream endpoint port is in tls_ports (a ServiceEntry on port 80 with
--   targetPort 443 and a DestinationRule tls.mode SIMPLE: TLS origination) or that carried an SNI
--   is TLS, not plaintext. Blocked requests left nothing.
-- @param since '' window start (ISO time); empty = 24 hours before the data's last record
-- @param until '' window end (ISO time, exclusive); empty = after the last record
-- @param baseline_start '' baseline start (ISO time); empty = the data's first record
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param tls_ports '443,8443' upstream ports that mean the proxy originated TLS
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
win AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1)
SELECT
    'plaintext_egress' AS kind,
    CASE
        WHEN EXISTS (SELECT 1 FROM base b WHERE b.destination = w.destination AND request_protocol(b.protocol, b.method, b.authority) LIKE 'HTTP%'
                     AND b.requested_server_name IS NULL
                     AND NOT list_contains(CAST(string_split($tls_ports, ',') AS INTEGER[]), b.upstream_host_port))
            THEN 'low'
        WHEN sum(w.bytes_received) > 0 THEN 'medium'
        ELSE 'low'
    END AS severity,
    string_agg(DISTINCT w.source_ip, ',' ORDER BY w.source_ip) AS source,
    w.destination,
    {
        'requests': count(*),
        'upstream_ports': list_sort(list(DISTINCT w.upstream_host_port)),
        'methods': list_sort(list(DISTINCT w.method) FILTER (WHERE w.method IS NOT NULL)),
        'bytes_up': CAST(sum(w.bytes_received) AS BIGINT),  -- null: the format logs no bytes
        'first_seen': min(w.start_time),
        'last_seen': max(w.start_time),
        'sample_request_ids': list(w.request_id ORDER BY w.start_time) FILTER (WHERE w.request_id IS NOT NULL)[1:3]
    } AS evidence,
    'Requests to ' || w.destination || ' leave the mesh in clear text: use https, or originate TLS at '
        || 'the egress (ServiceEntry targetPort 443 + DestinationRule tls.mode SIMPLE).' AS advice
FROM win w
WHERE request_protocol(w.protocol, w.method, w.authority) LIKE 'HTTP%'
  AND w.egress_kind <> 'blocked'
  AND w.upstream_host IS NOT NULL
  AND w.requested_server_name IS NULL
  AND NOT coalesce(list_contains(CAST(string_split($tls_ports, ',') AS INTEGER[]), w.upstream_host_port), false)
GROUP BY w.destination
ORDER BY count(*) DESC, w.destination
