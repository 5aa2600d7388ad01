-- authority_host(authority): the host of an HTTP authority (Host header), lowercase, without its
-- port: `api.example.com:443` is api.example.com, `[2001:db8::1]:8080` is 2001:db8::1. A bare IPv6
-- address (HTTP requires brackets, some clients omit them) stays whole; empty is null.
CREATE OR REPLACE MACRO authority_host(authority) AS (
    nullif(trim(lower(regexp_replace(authority, '^(\[[^\]]*\]|[^:]*):[0-9]*$', '\1')), '[]'), '')
);
