-- authz_denied(response_code_details, connection_termination_details, response_flags, error): whether
-- an authorization policy refused the row: Envoy's RBAC (rbac_denial.sql), an external authorizer
-- (ext_authz_denial.sql) or ztunnel's policy (ztunnel_denial.sql). The denials view's rows
-- (denials.sql), which a report keeps beside the egress rows (logpipe/reports.py).
CREATE OR REPLACE MACRO authz_denied(response_code_details, connection_termination_details, response_flags, error) AS (
    rbac_denial(response_code_details, connection_termination_details)
        OR ext_authz_denial(response_flags, response_code_details)
        OR ztunnel_denial(error)
);
