-- ip_text(ip): an IP address's text in one spelling, RFC 5952's (section 4: lowercase hex, no leading
-- zeros in a group, `::` for the longest run of two or more zero groups, the first of equal runs, never
-- for one group), an IPv4-mapped one (::ffff:0:0/96) as the IPv4 address, as ip_norm writes a client's
-- and Envoy's upstream host is written (inet_ntop: `::ffff:8.8.8.8`, which ip_norm reads as 8.8.8.8;
-- NAT64's `64:ff9b::808:404`, not RFC 5952 5's mixed `64:ff9b::8.8.4.4`); NULL when the text is no
-- address (ip_value). So that one address is one destination however a Host header or SNI spells
-- it (traffic.sql): `2001:db8:0:0:0:0:0:1` and `[2001:0db8::0001]` are 2001:db8::1.
-- (The groups from ip_value's number in hex; `lambda`s bind a value once: macros are expanded inline.
-- Lists and lambdas: traffic.sql calls it once per distinct name, not per row.)
CREATE OR REPLACE MACRO ip_text(ip) AS (
    list_transform([{'v': ip_value(ip), 'six': contains(ip_norm(ip), ':')}], lambda a:
        CASE
            WHEN a.v IS NULL THEN NULL
            WHEN NOT a.six OR a.v BETWEEN 281470681743360 AND 281474976710655 THEN  -- ::ffff:0:0/96
                list_transform([CAST(a.v % 4294967296 AS BIGINT)], lambda w:
                    printf('%d.%d.%d.%d', w // 16777216, w // 65536 % 256, w // 256 % 256, w % 256))[1]
            ELSE
                list_transform([array_to_string(list_transform(range(1, 33, 4), lambda i:
                        coalesce(nullif(ltrim(lower(substr(lpad(hex(a.v), 32, '0'), i, 4)), '0'), ''), '0')), ':')],
                    lambda g: list_transform([list_filter([8, 7, 6, 5, 4, 3, 2],
                                                          lambda k: contains(':' || g || ':', repeat(':0', k) || ':'))[1]],
                        -- (the first run of the longest: a longer one would have matched first)
                        lambda k: CASE WHEN k IS NULL THEN g
                                       ELSE regexp_replace(g, '(^|:)0' || repeat(':0', k - 1) || '(:|$)', '::') END)[1])[1]
        END)[1]
);
