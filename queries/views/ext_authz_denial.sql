-- ext_authz_denial(response_flags, response_code_details): whether an external authorizer (Envoy's
-- ext_authz filter: an AuthorizationPolicy with action CUSTOM) refused the request: the UAEX flag,
-- or ext_authz_denied in response_code_details. authz_denial and denied both ask it. False, not null,
-- when neither says so.
CREATE OR REPLACE MACRO ext_authz_denial(response_flags, response_code_details) AS (
    coalesce(list_contains(response_flags, 'UAEX'), false)
        OR coalesce(response_code_details = 'ext_authz_denied', false)
);
