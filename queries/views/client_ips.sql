-- client_ips(source_ip): an aggregate: the distinct client IPs of a group, sorted (empty where the
-- format logs none): a finding's or row's `source_ips`, beside its client as client_named names it
-- (a workload of several pods is one client of several IPs).
CREATE OR REPLACE MACRO client_ips(ip) AS (
    coalesce(list_sort(list(DISTINCT ip) FILTER (WHERE ip IS NOT NULL)), CAST([] AS VARCHAR[]))
);
