-- all_dns_failed(response_flags), an aggregate: whether every request of the group failed DNS
-- resolution (dns_failed.sql), the test that gives a destination DNS advice (dns_failure_advice.sql)
-- and no ServiceEntry (service_entry_yaml_ports.sql): new_destination, unregistered_egress and
-- passthrough_destinations (registry_only, service_entries) read it, one definition for the three.
CREATE OR REPLACE MACRO all_dns_failed(response_flags) AS (
    bool_and(dns_failed(response_flags))
);
