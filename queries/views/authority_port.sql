-- authority_port(authority): the port of an HTTP authority, null when it names none (a bare IPv6
-- address names none): `api.example.com:443` is 443, `[2001:db8::1]:8080` 8080. A CONNECT's
-- authority always has one (RFC 9110 9.3.6: host:port), the port its tunnel goes to.
CREATE OR REPLACE MACRO authority_port(authority) AS (
    TRY_CAST(nullif(regexp_extract(authority, '^(\[[^\]]*\]|[^:]*):([0-9]+)$', 2), '') AS INTEGER)
);
