-- dns_failed(response_flags): whether a request failed DNS resolution (response flag DF,
-- DnsResolutionFailed: FORMATS.md c; Istio's AllowAnyDynamicDNSCluster answers 503 DF when the name
-- does not resolve); false where the format logs no flags. error_spike counts such failures;
-- all_dns_failed.sql asks it of every request of a group.
CREATE OR REPLACE MACRO dns_failed(response_flags) AS (
    coalesce(list_contains(response_flags, 'DF'), false)
);
