-- istio_sni_host(sni): the service host of an Istio mTLS SNI, lowercase, else null. Istio's
-- client sidecars and gateways send the cluster key in DNS SRV form as SNI,
-- DIRECTION_.PORT_.SUBSET_.HOST (istio/istio pilot/pkg/model/service.go BuildDNSSrvSubsetKey; an
-- empty subset prints "_._."), e.g. outbound_.8000_._.httpbin.foo.svc.cluster.local: a server-side
-- proxy (a sidecar's inbound, an egress or east-west gateway) logs it as %REQUESTED_SERVER_NAME%.
-- Two more shapes of it are read: Envoy >= 1.32 (Istio 1.23.2 on) marks a logged SNI that is no DNS
-- name, as this one is, with a leading "invalid:" (invalid:outbound_.8000_._.httpbin…, istio/istio#53426);
-- Istio before 1.1 sent the cluster name itself, outbound|80||httpbin.foo.svc.cluster.local
-- (istio/istio PR #9672 moved to the DNS SRV form). It names a mesh service (or the gateway the
-- hop goes into), not a host on the internet: traffic.sql names a destination by it, and the
-- inventory's sni column leaves it out (queries/inventory/destinations.sql). (The same key as a
-- cluster name, an AUTO_PASSTHROUGH gateway's, is split by the grammar: grammars/access.lark, cluster;
-- as there, the subset, a DNS-1123 label, ends at the first "_." and the host keeps any later one.)
CREATE OR REPLACE MACRO istio_sni_host(sni) AS (
    nullif(lower(regexp_extract(sni, '^(?:invalid:)?(?:outbound|inbound)(?:_\.[0-9]+_\.[^|; ]*?_\.|\|[0-9]+\|[^|; ]*\|)([^|; ]+)$', 1)), '')
);
