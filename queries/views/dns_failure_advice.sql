-- dns_failure_advice(destination): the advice for a destination whose requests failed DNS
-- resolution (response flag DF, DnsResolutionFailed: FORMATS.md c), as a dynamic forward proxy
-- reports it (Istio's AllowAnyDynamicDNSCluster answers 503 DF when the name does not resolve).
-- A ServiceEntry would not make the name resolve, so the findings that would advise one
-- (unregistered_egress, new_destination) give this instead when every request failed so
-- (all_dns_failed.sql), and error_spike adds it when DF is among its failed requests' flags and its
-- failure_flags.
CREATE OR REPLACE MACRO dns_failure_advice(destination) AS (
    'DNS resolution of ' || coalesce(destination, 'this name') || ' failed (response flag DF): check the name for '
        || 'a typo or a retired host, and that the proxy''s resolver answers for it; a ServiceEntry would not '
        || 'make it resolve.'
);
