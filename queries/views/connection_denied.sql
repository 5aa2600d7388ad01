-- connection_denied(connection_termination_details, error): whether a proxy refused a connection by
-- AuthorizationPolicy, where no response code says so (a TCP connection: code 0, no flags): Envoy's
-- network RBAC filter (connection_termination_details rbac_access_denied_matched_policy[…], at a
-- waypoint or sidecar) or ztunnel (ztunnel_denial of its `error`). False, not null, when neither.
CREATE OR REPLACE MACRO connection_denied(connection_termination_details, error) AS (
    rbac_denial(NULL, connection_termination_details) OR ztunnel_denial(error)
);
