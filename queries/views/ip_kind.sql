-- ip_kind(ip): 'internal' or 'service_vip' when the address is in a range of logpipe_cidrs
-- (settings: internal_cidrs, service_vip_cidrs), 'public' for any other address, NULL when `ip` is
-- not an address. A service VIP wins over an overlapping internal range, then the narrowest range.
CREATE OR REPLACE MACRO ip_kind(ip) AS (
    list_transform([{
        'v': ip_value(ip),
        'family': CASE WHEN contains(ip_norm(ip), ':') THEN 6 ELSE 4 END,
        'ranges': (SELECT list(c ORDER BY c.kind = 'service_vip' DESC, c.last - c.first) FROM logpipe_cidrs AS c)
    }], lambda s:
        CASE
            WHEN s.v IS NULL THEN NULL
            ELSE coalesce(list_filter(s.ranges, lambda c: c.family = s.family AND s.v BETWEEN c.first AND c.last)[1].kind,
                          'public')
        END)[1]
);
