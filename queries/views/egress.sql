-- egress: access_log rows whose destination is outside the mesh, with the columns the traffic view
-- (traffic.sql) adds: egress_kind (why: waypoint, registered, passthrough, blocked, public_ip),
-- destination, destination_ip, destination_ip_kind, destination_port, source_ip, source_workload, source_owner,
-- upstream_connected.
-- The judgement itself is in traffic.sql.
CREATE OR REPLACE VIEW egress AS
SELECT * FROM traffic WHERE egress_kind IS NOT NULL;
