-- client_named(workload, ip): a row's client as the reports name it (egress.sql's source_workload and
-- source_ip): its workload where known (--pods, or ztunnel's lines: client_workloads.sql), else its IP,
-- or, where the row names none (a format of one's own without %DOWNSTREAM_REMOTE_ADDRESS%), that its
-- address is not in the logs, as a destination of none is named (destination_named.sql). The reports
-- group by it, so a workload of several pods' IPs is one client.
CREATE OR REPLACE MACRO client_named(workload, ip) AS (
    coalesce(workload, ip, 'A client (its address is not in the logs)')
);
