-- service_entry_yaml(destination, port, protocol, dns_failed): the ServiceEntry of a destination
-- reached through PassthroughCluster on one port (service_entry_yaml_ports.sql, whose rules it follows).
CREATE OR REPLACE MACRO service_entry_yaml(destination, port, protocol, dns_failed) AS (
    service_entry_yaml_ports(destination, [{'port': port, 'protocol': protocol}], dns_failed)
);
