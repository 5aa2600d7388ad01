-- blocked_by(upstream_cluster, route_name): what blocked a row the traffic view judged 'blocked'
-- (traffic.sql): BlackHoleCluster (REGISTRY_ONLY, TCP/TLS), the block_all route (plain HTTP under
-- REGISTRY_ONLY), or, with neither, 'no route' (a 404 NR: Istio before 1.3, plain HTTP to an
-- unknown host). denied and blocked_attempt name the block by it.
CREATE OR REPLACE MACRO blocked_by(upstream_cluster, route_name) AS (
    coalesce(upstream_cluster, route_name, 'no route')
);
