-- istio_sni_host(sni): the service host of an Istio mTLS SNI, lowercase, else null. Istio's
-- client sidecars and gateways send the cluster key in DNS SRV form as SNI,
-- DIRECTION_.PORT_.SUBSET_.HOST (istio/istio pilot/pkg/model/service.go BuildDNSSrvSubsetKey; an
-- empty subset prints "_._."), e.g. outbound_.8000_._.httpbin.foo.svc.cluster.local: a server-side
-- proxy logs it as %REQUESTED_SERVER_NAME%. It names a mesh service (httpbin.foo.svc.cluster.local),
-- not a host on the internet. (The same key as a cluster name, an AUTO_PASSTHROUGH gateway's, is
-- split by the grammar: grammars/access.lark, cluster.)
CREATE OR REPLACE MACRO istio_sni_host(sni) AS (
    nullif(lower(regexp_extract(sni, '^(outbound|inbound)_\.[0-9]+_\.[^|; ]*_\.([^|; ]+)$', 2)), '')
);
