-- has_failure_flag(response_flags, failure_flags): whether a request carries one of the response flags
-- in failure_flags (text, comma-separated, e.g. 'UF,UH' or 'UF, UH': each name trimmed, as the stream's
-- alerts read the list): is_error's and is_failure's flag half, the inventory's `flagged`.
CREATE OR REPLACE MACRO has_failure_flag(response_flags, failure_flags) AS (
    list_has_any(response_flags, list_transform(CAST(string_split(failure_flags, ',') AS VARCHAR[]), lambda f: trim(f)))
);
