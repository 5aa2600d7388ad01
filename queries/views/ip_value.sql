-- ip_value(ip): an IP address as an unsigned integer (IPv4: 32 bits, IPv6: 128 bits), NULL when
-- the text is not an address. DuckDB's inet extension is not available offline, so the arithmetic
-- is plain SQL; ranges are compared with BETWEEN against logpipe_cidrs (filled from the settings).
-- An IPv6 address may end in an IPv4 one (RFC 4291 2.2's third form, `64:ff9b::8.8.4.4`: ip6_hex).
-- (`lambda x:` binds the normalized text once: macros are expanded inline.)
CREATE OR REPLACE MACRO ip_value(ip) AS (
    list_transform([ip_norm(ip)], lambda x:
        CASE
            WHEN x IS NULL THEN NULL
            WHEN NOT contains(x, ':') THEN
                list_transform([string_split(x, '.')], lambda o:
                    CASE WHEN len(o) = 4 AND list_bool_and(list_transform(o,
                            lambda s: len(s) BETWEEN 1 AND 3 AND TRY_CAST(s AS UTINYINT) IS NOT NULL))
                        THEN list_reduce(list_transform(o, lambda s: CAST(s AS UHUGEINT)), lambda a, b: a * 256 + b)
                    END)[1]
            ELSE
                list_transform([ip6_groups(ip6_hex(x))], lambda g:
                    CASE WHEN len(g) = 8 AND list_bool_and(list_transform(g,
                            lambda s: len(s) BETWEEN 1 AND 4 AND TRY_CAST('0x' || s AS UHUGEINT) IS NOT NULL))
                        THEN list_reduce(list_transform(g, lambda s: CAST('0x' || s AS UHUGEINT)), lambda a, b: a * 65536 + b)
                    END)[1]
        END)[1]
);
