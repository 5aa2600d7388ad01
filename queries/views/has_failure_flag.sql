-- has_failure_flag(response_flags, failure_flags): whether a request carries one of the response flags
-- in failure_flags (text, comma-separated, e.g. 'UF,UH'): is_error's flag half, the inventory's `flagged`.
CREATE OR REPLACE MACRO has_failure_flag(response_flags, failure_flags) AS (
    list_has_any(response_flags, CAST(string_split(failure_flags, ',') AS VARCHAR[]))
);
