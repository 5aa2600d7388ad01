-- title: Unregistered egress
-- description: Traffic that left through PassthroughCluster (outboundTrafficPolicy ALLOW_ANY):
--   nobody registered these destinations. The advice holds a ServiceEntry that registers each one
--   (hosts, a port with its protocol for every port the destination was reached on in the window,
--   resolution, MESH_EXTERNAL: service_entry_yaml_ports.sql), the document `query service_entries`
--   gives for the same window, ready for kubectl apply -f -. A format
--   that logs no port (no %UPSTREAM_CLUSTER% port, %DOWNSTREAM_LOCAL_ADDRESS% or %UPSTREAM_HOST%)
--   leaves the port null: the ServiceEntry then has a placeholder port 0 (which Istio refuses) with a
--   comment to set it, and the advice says so. A request with a method or authority is HTTP though
--   the format has no %PROTOCOL% (request_protocol.sql); bytes a format does not log are null. A
--   destination whose every request failed DNS resolution (flag DF: AllowAnyDynamicDNSCluster) gets
--   DNS advice (dns_failure_advice.sql) and no ServiceEntry: registering it would not make it resolve.
--   One for whose every window request the proxy made no upstream connection (UF, UH, NC, NR, DO:
--   upstream_not_connected.sql) sent nothing out: its advice says so before the ServiceEntry, and it
--   keeps its severity, as a blocked attempt keeps blocked_attempt's: a workload tried to reach a host
--   nobody registered, and under REGISTRY_ONLY it would have been blocked.
-- @param since '' window start (ISO time); empty = 24 hours before the last egress request (the last record where none is egress)
-- @param until '' window end (ISO time, exclusive); empty = after the last record (of any kind, not only the last egress request)
-- @param baseline_start '' baseline start (ISO time); empty = the first egress request (the first record where none is egress)
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param min_requests 1 fewest window requests for a finding
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
-- (a request an authorization policy refused is authz_denial's finding alone: one event, one finding; an RBAC
-- 403 to a raw IP through PassthroughCluster was direct_ip_egress, unregistered_egress and authz_denial)
win AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1
        AND NOT authz_denied(e.response_code_details, e.connection_termination_details, e.response_flags, e.error)),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1),
found AS (
    SELECT
        w.destination,
        w.destination_port AS port,
        service_entry_protocol(w.protocol, w.method, w.authority, w.requested_server_name,
                               w.upstream_cluster_direction, w.upstream_cluster_subset) AS se_protocol,
        count(*) AS requests,
        all_dns_failed(w.response_flags) AS dns_failed,
        bool_and(NOT w.upstream_connected) AS not_connected,
        list_sort(list_distinct(flatten(list(w.response_flags)))) AS flags,
        string_agg(DISTINCT client_named(w.source_workload, w.source_ip), ',' ORDER BY client_named(w.source_workload, w.source_ip)) AS sources,
        CAST(sum(w.bytes_received) AS BIGINT) AS bytes_up,
        min(w.start_time) AS first_seen,
        max(w.start_time) AS last_seen,
        -- (the earliest, then the least id: min_by keeps the first three of its key as it reads, not sorting every row)
        min_by(w.request_id, (w.start_time, w.request_id), 3) FILTER (WHERE w.request_id IS NOT NULL) AS ids,
        EXISTS (SELECT 1 FROM base b WHERE b.destination = w.destination AND b.egress_kind = 'passthrough') AS known
    FROM win w
    WHERE w.egress_kind = 'passthrough' AND w.destination IS NOT NULL
    GROUP BY w.destination, w.destination_port
    HAVING count(*) >= CAST($min_requests AS INTEGER)
),
-- (the destination's one document (a TCP host's per IP), every port of it in the window, as service_entries writes it for
-- that window: passthrough_destinations.sql; one per port of one host is what Istio merges worst.
-- Null for a name not safe in YAML, which is no DNS name, and for a DNS failure: service_entry_yaml_ports.sql)
documents AS (
    SELECT destination, any_value(service_entry) AS se
    FROM passthrough_destinations((SELECT CAST(w0 AS VARCHAR) FROM bounds), (SELECT CAST(w1 AS VARCHAR) FROM bounds))
    GROUP BY destination
),
registering AS (
    SELECT f.*, CASE WHEN NOT f.dns_failed THEN d.se END AS se
    FROM found f LEFT JOIN documents d ON d.destination = f.destination
)
SELECT
    'unregistered_egress' AS kind,
    CASE WHEN known THEN 'low' ELSE 'medium' END AS severity,
    sources AS source,
    destination,
    {
        'requests': requests,
        'port': port,
        'protocol': se_protocol,
        'bytes_up': bytes_up,
        'first_seen': evidence_time(first_seen),
        'last_seen': evidence_time(last_seen),
        'sample_request_ids': ids,
        'service_entry': se
    } AS evidence,
    CASE WHEN dns_failed THEN dns_failure_advice(destination)
        WHEN se IS NOT NULL
        THEN 'Unregistered egress to ' || CASE WHEN contains(destination, ':') THEN '[' || destination || ']' ELSE destination END
             || coalesce(':' || port, ' (port not in the logs)')
             -- (nothing left, but the attempt is the news: see the description)
             || CASE WHEN not_connected
                     THEN ' that never connected (the proxy made no upstream connection for any request: response flags '
                          || array_to_string(flags, ',') || '; nothing left, but a workload tried it)' ELSE '' END
             || '. If it is legitimate, register it '
             || CASE WHEN port IS NULL THEN '(set the port in the service_entry in the evidence, then kubectl apply -f it)'
                     ELSE '(kubectl apply -f the service_entry in the evidence)' END
             || ', then consider '
             || 'outboundTrafficPolicy REGISTRY_ONLY so the next unknown host is blocked.'
        ELSE 'Unregistered egress to a host name that is not a valid DNS name: investigate the client.'
    END AS advice
FROM registering
ORDER BY requests DESC, destination, port
