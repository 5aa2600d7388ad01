-- title: Authorization denials
-- description: Requests refused by an Istio AuthorizationPolicy (Envoy RBAC:
--   rbac_access_denied_matched_policy[ns[NS]-policy[NAME]-rule[N]], "none" when ALLOW policies
--   exist and none matched), connections ztunnel refused by one (its error "connection closed due
--   to policy rejection…" or "…policy change": ztunnel_denial.sql; policy NS/NAME of "explicitly
--   denied by: NS/NAME", "none" of "allow policies exist, but none allowed"), or requests refused by
--   an external authorizer (UAEX / ext_authz_denied): the denials view's rows (denials.sql, which the
--   live stream's alert reads too), by source, destination and policy. A 403 the
--   destination answered itself (via_upstream) is none of these. Covers every proxy, not only
--   egress: evidence.scope says which a finding is ('egress', or 'internal': an inbound sidecar's,
--   an inbound ztunnel's or a *.svc host's denial), and its source and destination are named as the
--   egress view names them (the traffic view's). Low when the baseline shows the same client denied
--   the same destination, the client known by its workload as new_pair knows it (client_workload.sql):
--   a Deployment's pods after a deploy, a CronJob's next run, repeat what their workload was denied,
--   and were medium or high again after each deploy.
-- @param since '' window start (ISO time); empty = 24 hours before the last egress request (the last record where none is egress)
-- @param until '' window end (ISO time, exclusive); empty = after the last record (of any kind, not only the last egress request)
-- @param baseline_start '' baseline start (ISO time); empty = the first egress request (the first record where none is egress)
-- @param baseline_end '' baseline end (ISO time, exclusive); empty = the window start
-- @param denial_high 20 window denials of one source to one destination (new to the baseline) that make it high
WITH bounds AS (SELECT * FROM report_bounds($since, $until, $baseline_start, $baseline_end)),  -- (the report's window: egress's)
denied AS (
    SELECT
        a.denied_at AS start_time, a.request_id,  -- (a pair of ztunnel's lines: its first line's time, denials.sql)
        client_named(a.source_workload, a.source_ip) AS source,
        client_named(a.source_owner, a.source_ip) AS client,
        a.source_ip,
        a.destination,
        a.destination_port AS port,
        a.egress_kind IS NOT NULL AS is_egress,
        a.mechanism,
        a.policy,
        a.denied_at >= bounds.w0 AND a.denied_at < bounds.w1 AS in_window,
        a.denied_at >= bounds.b0 AND a.denied_at < bounds.b1 AS in_baseline
    FROM denials a, bounds  -- (denials.sql: one row per denied request, its mechanism and policy)
)
SELECT
    'authz_denial' AS kind,
    CASE
        WHEN EXISTS (SELECT 1 FROM denied b WHERE b.in_baseline AND b.client = w.client
                     AND b.destination IS NOT DISTINCT FROM w.destination) THEN 'low'
        WHEN count(*) >= CAST($denial_high AS INTEGER) THEN 'high'
        ELSE 'medium'
    END AS severity,
    w.source,
    w.destination,
    {
        'scope': CASE WHEN bool_and(w.is_egress) THEN 'egress' WHEN bool_or(w.is_egress) THEN 'egress, internal'
                      ELSE 'internal' END,
        'denials': count(*),
        'ports': list_sort(list(DISTINCT w.port) FILTER (WHERE w.port IS NOT NULL)),
        'mechanism': string_agg(DISTINCT w.mechanism, ',' ORDER BY w.mechanism),
        'policies': list_sort(list(DISTINCT w.policy) FILTER (WHERE w.policy IS NOT NULL)),
        'first_seen': evidence_time(min(w.start_time)),
        'last_seen': evidence_time(max(w.start_time)),
        -- (the earliest, then the least id: min_by keeps the first three of its key as it reads, not sorting every row)
        'sample_request_ids': min_by(w.request_id, (w.start_time, w.request_id), 3) FILTER (WHERE w.request_id IS NOT NULL)
    } AS evidence,
    -- each mechanism's own policies: a pair denied by Envoy's RBAC and by ztunnel names each by what denied it
    concat_ws(' ',
        nullif(concat_ws('; ',
            CASE WHEN bool_or(w.mechanism = 'rbac') THEN 'Denied by AuthorizationPolicy '
                || coalesce(string_agg(DISTINCT w.policy, ', ' ORDER BY w.policy) FILTER (WHERE w.mechanism = 'rbac'),
                            '(not named in the log)')
                || ' (ns[NAMESPACE]-policy[NAME]-rule[INDEX]; "none" means no ALLOW policy matched)' END,
            CASE WHEN bool_or(w.mechanism = 'ztunnel policy')
                THEN CASE WHEN bool_or(w.mechanism = 'rbac') THEN 'refused' ELSE 'Refused' END
                || ' by ztunnel (L4 AuthorizationPolicy) '
                || coalesce(string_agg(DISTINCT w.policy, ', ' ORDER BY w.policy) FILTER (WHERE w.mechanism = 'ztunnel policy'),
                            '(not named in its error)')
                || ' (NAMESPACE/NAME of an explicit DENY; "none" means no ALLOW policy allowed it)' END), '')
            || ': if the call is legitimate, extend the policy (kubectl get authorizationpolicy -A); if not, find out '
            || 'why this client tries.',
        CASE WHEN bool_or(w.mechanism = 'ext_authz')
            THEN 'Denied by the external authorizer (ext_authz, UAEX): check its decision log for these request ids.' END
    ) AS advice,
    client_ips(w.source_ip) AS source_ips
FROM denied w
WHERE w.in_window
GROUP BY w.source, w.client, w.destination  -- (client: source's owner, one a source)
ORDER BY count(*) DESC, w.destination, w.source
