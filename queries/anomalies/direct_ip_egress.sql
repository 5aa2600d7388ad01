-- title: Direct-IP egress
-- description: Requests whose HTTP authority or TLS SNI is a raw IP address instead of a host
--   name: it bypasses DNS-based policy and registration, and is typical of malware and hard-coded
--   endpoints. Low when the baseline reached that destination already; as new_destination reads
--   it, a blocked attempt, or one the proxy made no upstream connection for, reached nothing, so a
--   baseline of such attempts alone leaves it higher (but for a window of attempts that never connected
--   either: no news).
--   The advice fits how it left: registered alone (a ServiceEntry admits the address, through an
--   egress waypoint or not), use the name it registers and review it; else register a name and block
--   raw-IP egress.
--   A connection that carries no name at all is none of these: plain TCP (no SNI, no authority),
--   and every ztunnel line (ztunnel logs neither: its access fields, istio/ztunnel
--   src/telemetry.rs, FORMATS.md e). The address it dialled may be the one a name resolved to, as
--   every connection's is, so it tells no hard-coded address from a looked-up one, and every
--   connection ztunnel carries straight out to a public address (public_ip) would be a finding,
--   each day; a raw-IP destination new to the baseline is new_destination's (public_ip: medium).
-- @param since '' window start (ISO time); empty = 24 hours before the last egress request (the last record where none is egress)
-- @param until '' window end (ISO time, exclusive); empty = after the last record (of any kind, not only the last egress request)
-- @param baseline_start '' baseline start (ISO time); empty = the first egress request (the first record where none is egress)
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
-- (a request an authorization policy refused is authz_denial's finding alone: one event, one finding; an RBAC
-- 403 to a raw IP through PassthroughCluster was direct_ip_egress, unregistered_egress and authz_denial)
win AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1
        AND NOT authz_denied(e.response_code_details, e.connection_termination_details, e.response_flags, e.error)),
-- Whether each authority and server name of the window is a raw IP, judged once per distinct value
-- (ip_value, queries/views/ip_value.sql, is the one test of "is an IP address", and it is lists and
-- lambdas), as traffic.sql judges addresses: a value's judgement is joined to its rows (a filter on it
-- alone would be pushed under DISTINCT, onto every row).
authorities AS (
    SELECT authority, ip_value(authority_host(authority)) IS NOT NULL AS is_ip
    FROM (SELECT DISTINCT authority FROM win WHERE authority IS NOT NULL)
),
snis AS (
    SELECT requested_server_name, ip_value(requested_server_name) IS NOT NULL AS is_ip
    FROM (SELECT DISTINCT requested_server_name FROM win WHERE requested_server_name IS NOT NULL)
),
named AS (
    SELECT w.*
    FROM win w
    LEFT JOIN authorities a ON a.authority = w.authority
    LEFT JOIN snis s ON s.requested_server_name = w.requested_server_name
    WHERE coalesce(a.is_ip, false) OR coalesce(s.is_ip, false)
)
SELECT
    'direct_ip_egress' AS kind,
    CASE
        WHEN bool_or(b.reached) OR (count(b.destination) > 0 AND bool_and(NOT w.upstream_connected)) THEN 'low'
        WHEN bool_or(w.egress_kind = 'passthrough') THEN 'high'
        ELSE 'medium'
    END AS severity,
    string_agg(DISTINCT client_named(w.source_workload, w.source_ip), ',' ORDER BY client_named(w.source_workload, w.source_ip)) AS source,
    w.destination,
    {
        'requests': count(*),
        'authorities': list_sort(list(DISTINCT w.authority) FILTER (WHERE w.authority IS NOT NULL)),
        'sni': list_sort(list(DISTINCT w.requested_server_name) FILTER (WHERE w.requested_server_name IS NOT NULL)),
        'egress_kind': string_agg(DISTINCT w.egress_kind, ',' ORDER BY w.egress_kind),
        'first_seen': evidence_time(min(w.start_time)),
        'last_seen': evidence_time(max(w.start_time)),
        -- (the earliest, then the least id: min_by keeps the first three of its key as it reads, not sorting every row)
        'sample_request_ids': min_by(w.request_id, (w.start_time, w.request_id), 3) FILTER (WHERE w.request_id IS NOT NULL)
    } AS evidence,
    'Clients call ' || w.destination || ' by IP address: find the hard-coded address in the workload, '
        -- (registered alone: a ServiceEntry admits the address already, and REGISTRY_ONLY would not block it)
        || CASE WHEN bool_and(w.egress_kind IN ('registered', 'waypoint'))
                THEN 'use the DNS name its ServiceEntry registers, and review the ServiceEntry that admits the raw '
                     || 'address (its hosts and addresses: kubectl get serviceentry -A).'
                ELSE 'use a DNS name registered with a ServiceEntry, and block raw-IP egress (REGISTRY_ONLY).' END AS advice
FROM named w
LEFT JOIN baseline_destinations($since, $until, $baseline_start, $baseline_end) b ON b.destination = w.destination
GROUP BY w.destination
ORDER BY count(*) DESC, w.destination
