-- client_workloads: who held a client IP when: ip (ip_norm's spelling), workload (namespace/owner, or
-- ztunnel's namespace/pod), from valid_from until valid_until (exclusive; null: open). Per IP the
-- intervals do not overlap, so a row matches one at most. Empty here: `--pods FILE`, and the ztunnel
-- lines of the data, fill it in the CLI's reports and queries (logpipe/reports.py attach_sources
-- shadows it with a temporary view of the same name). traffic.sql's source_workload reads it.
CREATE OR REPLACE VIEW client_workloads AS
SELECT CAST(NULL AS VARCHAR) AS ip, CAST(NULL AS VARCHAR) AS workload,
       CAST(NULL AS TIMESTAMPTZ) AS valid_from, CAST(NULL AS TIMESTAMPTZ) AS valid_until
WHERE false;
