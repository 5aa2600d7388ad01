-- client_named(source): a row's client as the reports name it: its source (egress.sql's source_ip: the
-- client's IP, or its workload with --pods), or, where the row names none (a format of one's own
-- without %DOWNSTREAM_REMOTE_ADDRESS%), that its address is not in the logs, as a destination of none
-- is named (destination_named.sql).
CREATE OR REPLACE MACRO client_named(source) AS (
    coalesce(source, 'A client (its address is not in the logs)')
);
