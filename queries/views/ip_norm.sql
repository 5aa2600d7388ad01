-- ip_norm(ip): an IP address as text in one canonical spelling for ip_value: lowercase, no
-- brackets, no IPv6 zone (`fe80::1%eth0`), and IPv4-mapped IPv6 (`::ffff:192.0.2.33`, dual-stack
-- sockets) as the IPv4 address it carries.
CREATE OR REPLACE MACRO ip_norm(ip) AS (
    CASE
        WHEN lower(ip) LIKE '::ffff:%.%' THEN substr(ip, 8)
        ELSE split_part(trim(lower(ip), '[]'), '%', 1)
    END
);
