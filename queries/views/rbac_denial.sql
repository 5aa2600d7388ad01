-- rbac_denial(response_code_details, connection_termination_details): whether Envoy's RBAC filter
-- (an Istio AuthorizationPolicy at a sidecar, gateway or waypoint) refused the request or
-- connection: rbac_access_denied_matched_policy[…] (or the bare rbac_access_denied of older Envoy)
-- in the HTTP filter's response_code_details or the network filter's
-- connection_termination_details. authz_denial, denied and connection_denied all ask it. False,
-- not null, when neither says so.
CREATE OR REPLACE MACRO rbac_denial(response_code_details, connection_termination_details) AS (
    coalesce(response_code_details LIKE 'rbac_access_denied%', false)
        OR coalesce(connection_termination_details LIKE 'rbac_access_denied%', false)
);
