-- ip6_groups(x): the eight 16-bit groups of a normalized IPv6 address as hex text, with `::`
-- expanded (RFC 4291 2.2); NULL when the text has more than one `::`. (`lambda p:` binds the split
-- once instead of repeating it: macros are expanded inline.)
CREATE OR REPLACE MACRO ip6_groups(x) AS (
    list_transform([string_split(x, '::')], lambda p:
        CASE
            WHEN len(p) > 2 THEN NULL
            WHEN len(p) = 1 THEN string_split(p[1], ':')
            ELSE list_concat(
                CASE WHEN p[1] = '' THEN []::VARCHAR[] ELSE string_split(p[1], ':') END,
                list_transform(range(8 - CASE WHEN p[1] = '' THEN 0 ELSE len(string_split(p[1], ':')) END
                                       - CASE WHEN p[2] = '' THEN 0 ELSE len(string_split(p[2], ':')) END),
                               lambda i: '0'),
                CASE WHEN p[2] = '' THEN []::VARCHAR[] ELSE string_split(p[2], ':') END)
        END)[1]
);
