-- authority_host(authority): the host of an HTTP authority (Host header), lowercase, without its
-- port: `api.example.com:443` is api.example.com, `[2001:db8::1]:8080` is 2001:db8::1. A bare IPv6
-- address (HTTP requires brackets, some clients omit them) stays whole; empty is null.
CREATE OR REPLACE MACRO authority_host(authority) AS (
    nullif(trim(lower(regexp_replace(authority, '^(\[[^\]]*\]|[^:]*):[0-9]*$', '\1')), '[]'), '')
);
-- authority_port(authority): the port of an HTTP authority, null when it names none (a bare IPv6
-- address names none): `api.example.com:443` is 443, `[2001:db8::1]:8080` 8080. A CONNECT's
-- authority always has one (RFC 9110 9.3.6: host:port), the port its tunnel goes to.
CREATE OR REPLACE MACRO authority_port(authority) AS (
    TRY_CAST(nullif(regexp_extract(authority, '^(\[[^\]]*\]|[^:]*):([0-9]+)$', 2), '') AS INTEGER)
);
