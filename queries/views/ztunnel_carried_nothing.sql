-- ztunnel_carried_nothing(error, bytes_received, bytes_sent): whether ztunnel logged a connection that
-- failed (an `error`) and moved no byte either way (a byte count it did not log, as on a `connection
-- failed` line, is none). ztunnel reads nothing of the streams it carries (L4: no SNI, no HTTP), so
-- all its row tells of what a connection carried is that bytes flowed over TCP; of one that carried
-- nothing it tells nothing. So the inventory's protocol and transport (destinations.sql) leave such a
-- row out (not known), whether it is a failed hop to an egress waypoint (traffic.sql, which takes
-- it for the egress row the waypoint never logged: there the waypoint's own listener would have said
-- TLS or HTTP) or a connection straight to a public address that was refused or timed out. False for
-- a null error (every other proxy's rows).
CREATE OR REPLACE MACRO ztunnel_carried_nothing(error, bytes_received, bytes_sent) AS (
    error IS NOT NULL AND coalesce(bytes_received, 0) = 0 AND coalesce(bytes_sent, 0) = 0
);
