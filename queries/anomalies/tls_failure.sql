-- title: TLS failures
-- description: Requests whose upstream TLS failed (certificate expired or not trusted, handshake
--   failure, wrong version: a plain-text endpoint), grouped by destination. TLS is Envoy's
--   upstream_transport_failure_reason when it is the TLS socket's ("TLS error: …" or
--   "TLS_error:|…:TLS_error_end", OpenSSL's "SSL routines", a handshake, a certificate); a connect
--   refused, reset or timed out before any TLS ("delayed connect error: 111", "immediate connect
--   error", "connection timeout") is not: error_spike counts those failures.
-- @param since '' window start (ISO time); empty = 24 hours before the last egress request (the last record where none is egress)
-- @param until '' window end (ISO time, exclusive); empty = after the last record (of any kind, not only the last egress request)
-- @param baseline_start '' baseline start (ISO time); empty = the first egress request (the first record where none is egress)
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param min_requests 1 fewest failed window requests for a finding
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
tls AS (
    SELECT e.* FROM egress e
    WHERE regexp_matches(e.upstream_transport_failure_reason, '\b(tls|ssl|x509)|openssl|handshake|certificate', 'i')
),
win AS (SELECT t.* FROM tls t, bounds WHERE t.start_time >= w0 AND t.start_time < w1),
base AS (SELECT t.* FROM tls t, bounds WHERE t.start_time >= b0 AND t.start_time < b1)
SELECT
    'tls_failure' AS kind,
    CASE
        WHEN bool_or(w.upstream_transport_failure_reason ILIKE '%CERTIFICATE%'
                     OR w.upstream_transport_failure_reason ILIKE '%verify%') THEN 'high'
        WHEN count(*) >= 10 THEN 'medium'
        ELSE 'low'
    END AS severity,
    string_agg(DISTINCT client_named(w.source_workload, w.source_ip), ',' ORDER BY client_named(w.source_workload, w.source_ip)) AS source,
    w.destination,
    {
        'failures': count(*),
        'reasons': list_sort(list(DISTINCT w.upstream_transport_failure_reason)),
        'ports': list_sort(list(DISTINCT w.destination_port)),
        'first_seen': evidence_time(min(w.start_time)),
        'last_seen': evidence_time(max(w.start_time)),
        'in_baseline': (SELECT count(*) FROM base b WHERE b.destination = w.destination),
        -- (the earliest, then the least id: min_by keeps the first three of its key as it reads, not sorting every row)
        'sample_request_ids': min_by(w.request_id, (w.start_time, w.request_id), 3) FILTER (WHERE w.request_id IS NOT NULL)
    } AS evidence,
    'TLS to ' || coalesce(w.destination, 'this destination') || ' fails: check the certificate of the '
        || 'endpoint (expiry, chain, SAN) and the DestinationRule tls settings (mode, sni, caCertificates).' AS advice
FROM win w
GROUP BY w.destination
HAVING count(*) >= CAST($min_requests AS INTEGER)
ORDER BY count(*) DESC, w.destination
