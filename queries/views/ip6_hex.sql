-- ip6_hex(x): a normalized IPv6 address whose last 32 bits are written as an IPv4 address (RFC 4291
-- 2.2's x:x:x:x:x:x:d.d.d.d) with those bits as two hex groups: `64:ff9b::8.8.4.4` (RFC 6052's NAT64
-- address of 8.8.4.4, which RFC 5952 5 recommends writing so; a client's Host header or SNI may) is
-- 64:ff9b::808:404, so that ip_value reads it (it was no address: no direct_ip_egress finding, no
-- ServiceEntry). NULL when the dotted part is no IPv4 address; any text without a dot as it is.
CREATE OR REPLACE MACRO ip6_hex(x) AS (
    CASE
        WHEN NOT contains(x, '.') THEN x
        ELSE list_transform([regexp_extract(x, '^(.*:)([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$',
                                            ['head', 'a', 'b', 'c', 'd'])], lambda m:
            m.head || printf('%x:%x', TRY_CAST(m.a AS UTINYINT)::INTEGER * 256 + TRY_CAST(m.b AS UTINYINT),
                                      TRY_CAST(m.c AS UTINYINT)::INTEGER * 256 + TRY_CAST(m.d AS UTINYINT)))[1]
    END
);
