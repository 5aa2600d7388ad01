-- title: TLS and transport failures
-- description: Requests whose upstream connection failed with a transport reason (certificate
--   expired or not trusted, handshake failure, reset), grouped by destination.
-- @param since '' window start (ISO time); empty = 24 hours before the data's last record
-- @param until '' window end (ISO time, exclusive); empty = after the last record
-- @param baseline_start '' baseline start (ISO time); empty = the data's first record
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param min_requests 1 fewest failed window requests for a finding
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
win AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1)
SELECT
    'tls_failure' AS kind,
    CASE
        WHEN bool_or(w.upstream_transport_failure_reason ILIKE '%CERTIFICATE%'
                     OR w.upstream_transport_failure_reason ILIKE '%verify%') THEN 'high'
        WHEN count(*) >= 10 THEN 'medium'
        ELSE 'low'
    END AS severity,
    string_agg(DISTINCT w.source_ip, ',' ORDER BY w.source_ip) AS source,
    w.destination,
    {
        'failures': count(*),
        'reasons': list_sort(list(DISTINCT w.upstream_transport_failure_reason)),
        'ports': list_sort(list(DISTINCT w.destination_port)),
        'first_seen': min(w.start_time),
        'last_seen': max(w.start_time),
        'in_baseline': (SELECT count(*) FROM base b WHERE b.destination = w.destination
                        AND b.upstream_transport_failure_reason IS NOT NULL),
        'sample_request_ids': list(w.request_id ORDER BY w.start_time) FILTER (WHERE w.request_id IS NOT NULL)[1:3]
    } AS evidence,
    CASE
        -- a connection refused, reset or timed out (errno 111, 104, 110: "delayed connect error: 111")
        -- before any TLS: the endpoint or the path to it, not a certificate
        WHEN bool_and(regexp_matches(w.upstream_transport_failure_reason,
                                     '(connect error|connection (refused|reset|timeout|failure))', 'i')
                      AND NOT regexp_matches(w.upstream_transport_failure_reason, '(certificate|verify|tls|ssl|handshake)', 'i'))
        THEN 'Connections to ' || coalesce(w.destination, 'this destination') || ' fail before TLS (refused, reset or'
            || ' timed out): check that the endpoint listens on the port, and the network path (egress firewall,'
            || ' NetworkPolicy) to it.'
        ELSE 'TLS to ' || coalesce(w.destination, 'this destination') || ' fails: check the certificate of the '
            || 'endpoint (expiry, chain, SAN) and the DestinationRule tls settings (mode, sni, caCertificates).'
    END AS advice
FROM win w
WHERE w.upstream_transport_failure_reason IS NOT NULL
GROUP BY w.destination
HAVING count(*) >= CAST($min_requests AS INTEGER)
ORDER BY count(*) DESC, w.destination
