-- title: New destinations
-- description: External destinations reached in the window that the baseline never reached.
--   Unregistered (passthrough) or raw-IP (public_ip) newcomers rank higher: nobody reviewed them; one
--   that received an upload of upload_high bytes or more (its bytes_received, of the requests the
--   proxy sent on) ranks high, whatever its kind: data leaving for a host nobody had called before is
--   how exfiltration looks (its upload is this finding's alone, not a volume_outlier's too against a
--   baseline of 0 bytes: volume_outlier judges the pairs the baseline reached; with no baseline at
--   all, where every destination is new and info, it judges every pair). A destination the baseline
--   only tried, and was blocked from or never connected to (no upstream connection for any of its
--   requests: upstream_not_connected.sql), was never reached: it is new when it is reached (tried
--   again without connecting, it is no news). The
--   advice fits how it left (egress_kind): not registered (passthrough: register it or block it), a
--   raw IP address that nothing registers (public_ip, or passthrough to an address: find the
--   hard-coded address), registered (a ServiceEntry admits it, through an egress waypoint or not:
--   confirm the owning team expects it, and review what admits it), or both registered and not (a
--   ServiceEntry that leaves some of its ports or clients out).
--   One whose every window request failed DNS resolution (flag DF: dns_failed.sql) gets DNS advice
--   (dns_failure_advice.sql), not a ServiceEntry. One for whose every window request the proxy made
--   no upstream connection (UF, UH, NC, NR, DF, DO, ztunnel's failed connection: traffic.sql's upstream_connected; a policy's refusal, below, is no request of it) sent nothing out:
--   it keeps its finding and its kind's severity, as a blocked attempt keeps blocked_attempt's (a
--   workload tried a host nobody called before, which is the news), and its advice says that nothing
--   left; its upload, never sent on, does not make it high.
--   A request an authorization policy refused (authz_denied.sql: an RBAC 403, ext_authz's UAEX,
--   ztunnel's policy rejection: the denials view's rows) is authz_denial's finding, not this one's, as
--   a blocked attempt is blocked_attempt's: one event, one finding (authz_denial rates a pair the
--   baseline did not deny medium, or high from denial_high denials, as this would a newcomer).
-- @param since '' window start (ISO time); empty = 24 hours before the last egress request (the last record where none is egress)
-- @param until '' window end (ISO time, exclusive); empty = after the last record (of any kind, not only the last egress request)
-- @param baseline_start '' baseline start (ISO time); empty = the first egress request (the first record where none is egress)
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param min_requests 1 fewest window requests for a finding (not of one that uploaded upload_high or more)
-- @param upload_high 1000000 bytes uploaded to the newcomer in the window (bytes_received) that make it high
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),
-- (not a refused request: authz_denial's)
-- (MATERIALIZED: the window's rows first; else DuckDB joined every egress row of the data to the
-- baseline's, a hash table of all of them, and cut the window after the join, so memory grew with
-- the data, not the window:
-- `logpipe query new_destination` of 5M rows over 7 days:
-- 1052 → 449 MB peak RSS, 806 → 194 MB DuckDB buffers, 13.7 → 12.1 s CPU)
win AS MATERIALIZED (SELECT e.* FROM egress e, bounds WHERE e.start_time >= w0 AND e.start_time < w1
        AND NOT authz_denied(e.response_code_details, e.connection_termination_details, e.response_flags, e.error)),
base AS (SELECT e.* FROM egress e, bounds WHERE e.start_time >= b0 AND e.start_time < b1),
SELECT
    'new_destination' AS kind,
    CASE
        WHEN (SELECT count(*) FROM base) = 0 THEN 'info'
        -- (bytes of a request the proxy made no upstream connection for never left)
        WHEN sum(w.bytes_received) FILTER (WHERE w.upstream_connected) >= CAST($upload_high AS BIGINT) THEN 'high'
        WHEN bool_or(w.egress_kind IN ('passthrough', 'public_ip')) THEN 'medium'
        ELSE 'low'
    END AS severity,
    string_agg(DISTINCT client_named(w.source_workload, w.source_ip), ',' ORDER BY client_named(w.source_workload, w.source_ip)) AS source,
    w.destination,
    {
        'requests': count(*),
        -- (null, not [null], when the format logs no port)
        'ports': nullif(list_sort(list(DISTINCT w.destination_port) FILTER (WHERE w.destination_port IS NOT NULL)), []),
        'egress_kind': string_agg(DISTINCT w.egress_kind, ',' ORDER BY w.egress_kind),
        'bytes_up': CAST(sum(w.bytes_received) AS BIGINT),  -- null: the format logs no bytes
        'first_seen': evidence_time(min(w.start_time)),
        'last_seen': evidence_time(max(w.start_time)),
        -- (the earliest, then the least id: min_by keeps the first three of its key as it reads, not sorting every row)
        'sample_request_ids': min_by(w.request_id, (w.start_time, w.request_id), 3) FILTER (WHERE w.request_id IS NOT NULL)
    } AS evidence,
    'A destination the baseline never saw'
    || CASE WHEN all_dns_failed(w.response_flags) THEN '. ' || dns_failure_advice(w.destination)
        ELSE CASE WHEN bool_and(NOT w.upstream_connected)
                 THEN ', tried but never reached: the proxy made no upstream connection for any request (response flags '
                      || array_to_string(list_sort(list_distinct(flatten(list(w.response_flags)))), ',')
                      || '), so nothing left; still, a workload tries a host nobody called before. '
                 ELSE ': ' END
            || CASE
                -- (registered and not: a ServiceEntry that covers some ports or clients, not all)
                WHEN bool_or(w.egress_kind IN ('registered', 'waypoint')) AND bool_or(w.egress_kind IN ('passthrough', 'public_ip'))
                THEN 'some requests went through a ServiceEntry and some through none (egress_kind and ports in the evidence): '
                     || 'confirm the owning team expects it, then check which ports and clients the ServiceEntry '
                     || 'leaves out (its ports, exportTo; a Sidecar''s egress hosts) and register or block the rest.'
                WHEN bool_or(w.egress_kind IN ('registered', 'waypoint'))
                THEN 'it is registered (a ServiceEntry admits it' || CASE WHEN bool_or(w.egress_kind = 'waypoint')
                         THEN ', through an egress waypoint' ELSE '' END
                     || '): confirm the owning team expects it, and review the ServiceEntry and any AuthorizationPolicy '
                     || 'that admit it (kubectl get serviceentry,authorizationpolicy -A).'
                WHEN ip_value(w.destination) IS NOT NULL OR bool_and(w.egress_kind = 'public_ip')
                THEN 'a raw IP address that no ServiceEntry registers: confirm the owning team expects it; find the '
                     || 'hard-coded address in the workload and use a DNS name registered with a ServiceEntry, or block it '
                     || 'with an AuthorizationPolicy / REGISTRY_ONLY.'
                ELSE 'it is not registered (PassthroughCluster: no ServiceEntry): confirm the owning team expects it; '
                     || 'register it with a ServiceEntry if legitimate (unregistered_egress gives one), or block it with '
                     || 'an AuthorizationPolicy / REGISTRY_ONLY.'
            END
        END
        || CASE WHEN sum(w.bytes_received) FILTER (WHERE w.upstream_connected) >= CAST($upload_high AS BIGINT)
                THEN ' It received ' || CAST(round(sum(w.bytes_received) FILTER (WHERE w.upstream_connected) / 1e6, 1) AS VARCHAR)
                     || ' MB from ' || string_agg(DISTINCT client_named(w.source_workload, w.source_ip), ', ' ORDER BY client_named(w.source_workload, w.source_ip))
                                           FILTER (WHERE w.upstream_connected)
                     || ': find out what was sent (the request ids lead to the application logs).'
                ELSE '' END AS advice
FROM win w
LEFT JOIN baseline_destinations($since, $until, $baseline_start, $baseline_end) b ON b.destination = w.destination
WHERE w.egress_kind <> 'blocked' AND b.reached IS NOT TRUE
GROUP BY w.destination
-- (fewer requests than min_requests are a finding still when they uploaded upload_high or more:
-- volume_outlier leaves such an upload to this finding, so min_requests must not drop it)
HAVING (count(*) >= CAST($min_requests AS INTEGER)
        OR sum(w.bytes_received) FILTER (WHERE w.upstream_connected) >= CAST($upload_high AS BIGINT))
    -- (one the baseline only tried without connecting: new once reached, no news when tried again so)
    AND (count(b.destination) = 0 OR bool_or(w.upstream_connected))
ORDER BY count(*) DESC, w.destination
