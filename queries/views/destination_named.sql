-- destination_named(destination): a row's destination as the reports and stream alerts name it: the
-- destination (traffic.sql), or, where the row names none, that it is not in the logs, as they name a
-- client of no address (client_named.sql). A format that logs neither
-- %DOWNSTREAM_LOCAL_ADDRESS% nor an upstream host, authority or SNI leaves a connection that
-- BlackHoleCluster blocked (no upstream host, FORMATS.md d) with no destination at all.
CREATE OR REPLACE MACRO destination_named(destination) AS (
    coalesce(destination, '(destination not in the logs)')
);
