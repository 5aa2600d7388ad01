-- service_entry_slug(destination): the part of a ServiceEntry's names that stands for its destination
-- (service_entry_yaml_ports.sql: metadata.name before the port, and the made-up host ip-….external of an
-- IP), of lowercase letters and digits with dashes between them, as Kubernetes names and DNS labels
-- allow (2001:db8:1:: gives 2001-db8-1-…, no trailing dash). A destination of labels of
-- lowercase letters and digits between single dots reads as itself with dashes for dots
-- (api.example.com: api-example-com, 192.0.2.1: 192-0-2-1). Any other (a dash or capital letter in a
-- host name, the colons of IPv6) could read as another's (a-b.example and a.b.example both
-- a-b-example, 1::2:3 and 1:2::3 both 1-2-3), so the first 8 hex digits of its MD5 follow
-- (a-b-example-4fe49c65): two documents never share a name, which kubectl apply would let the second
-- overwrite, and a destination's name is the same in every run and window, whatever else the data holds.
-- A name is at most 253 characters (Kubernetes' DNS subdomain names, kubernetes.io "Object Names and
-- IDs"), the port and its dash included: a host of more than 247 characters (a hashed one's of more
-- than 238) keeps its first 238 and the hash (238 + 9, and 6 for "-65535"), so that two long hosts of
-- one prefix keep names of their own.
CREATE OR REPLACE MACRO service_entry_slug(destination) AS (
    CASE WHEN regexp_full_match(destination, '[a-z0-9]+(\.[a-z0-9]+)*') AND length(destination) <= 247
         THEN replace(destination, '.', '-')
         ELSE rtrim(left(trim(lower(regexp_replace(destination, '[^A-Za-z0-9]+', '-', 'g')), '-'), 238), '-')
              || '-' || left(md5(destination), 8) END
);
