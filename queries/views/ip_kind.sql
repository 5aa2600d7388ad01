-- ip_kind(ip): 'internal' or 'service_vip' when the address is in a range of logpipe_cidrs
-- (settings: internal_cidrs, service_vip_cidrs), 'public' for any other address, NULL when `ip` is
-- not an address. A service VIP wins over an overlapping internal range, then the narrowest range.
-- An IPv6 address that carries an IPv4 one is judged as that IPv4 address, by its value, not its
-- spelling (ip_norm reads `::ffff:10.0.0.5` alone; `0:0:0:0:0:ffff:10.0.0.5` and `::ffff:a00:5` were
-- public): IPv4-mapped `::ffff:0:0/96` (RFC 4291 2.5.5.2), and NAT64's well-known prefix
-- `64:ff9b::/96` (RFC 6052 2.1), which RFC 6052 3.1 forbids for a non-global IPv4 address:
-- `64:ff9b::a00:5` (10.0.0.5) is internal, as 10.0.0.5 is, and `64:ff9b::808:808` public. A 6to4
-- address (`2002::/16`, RFC 3056 2: `2002:V4ADDR::/48`, the site's IPv4 address in bits 16-47) is
-- judged as the IPv4 address it carries too: RFC 3056 makes the prefix from a site's globally
-- unique IPv4 address and relays it over the IPv4 internet, so its reach is that address's:
-- `2002:a00:5::1` (10.0.0.5) is internal, `2002:808:808::1` public (it was public whatever it carried).
-- Which ranges are internal by default, and why (multicast, reserved, unspecified, ...): settings.py,
-- DEFAULT_INTERNAL_CIDRS. Documentation ranges are public by convention (the sample logs' stand-ins).
CREATE OR REPLACE MACRO ip_kind(ip) AS (
    list_transform([{
        'a': list_transform([{'v': ip_value(ip), 'six': contains(ip_norm(ip), ':')}], lambda a:
            CASE
                WHEN a.six AND a.v BETWEEN 281470681743360 AND 281474976710655  -- ::ffff:0:0/96
                    THEN {'v': a.v - 281470681743360, 'family': 4}
                WHEN a.six AND a.v BETWEEN 524413980667603649783483181312245760  -- 64:ff9b::/96
                                       AND 524413980667603649783483185607213055
                    THEN {'v': a.v - 524413980667603649783483181312245760, 'family': 4}
                WHEN a.six AND a.v BETWEEN 42545680458834377588178886921629466624  -- 2002::/16, >> 80
                                       AND 42550872755692912415807417417958686719
                    THEN {'v': (a.v - 42545680458834377588178886921629466624) // 1208925819614629174706176, 'family': 4}
                ELSE {'v': a.v, 'family': CASE WHEN a.six THEN 6 ELSE 4 END}
            END)[1],
        'ranges': (SELECT list(c ORDER BY c.kind = 'service_vip' DESC, c.last - c.first) FROM logpipe_cidrs AS c)
    }], lambda s:
        CASE
            WHEN s.a.v IS NULL THEN NULL
            ELSE coalesce(list_filter(s.ranges, lambda c: c.family = s.a.family AND s.a.v BETWEEN c.first AND c.last)[1].kind,
                          'public')
        END)[1]
);
