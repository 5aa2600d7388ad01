-- client_workloads: who held a client IP when: ip (ip_norm's spelling), workload (namespace/owner, a
-- CronJob's for its runs' Jobs: logpipe/reports.py's _POD_ROWS; or ztunnel's namespace/pod), from valid_from until valid_until (exclusive; null: open). Per IP the
-- intervals do not overlap, so a row matches one at most. Empty here: `--pods FILE`, and the ztunnel
-- lines of the data, fill it in the CLI's reports and queries (logpipe/reports.py attach_sources
-- shadows it with a temporary view of the same name). traffic.sql's source_workload reads it, and
-- source_owner its owner: the workload the anomaly reports judge a client by (whether the baseline knew
-- it): --pods' namespace/owner as it is, a name its owner chose; ztunnel's pod name without the parts
-- Kubernetes generates (client_workload.sql), which only a pod's name has.
CREATE OR REPLACE VIEW client_workloads AS
SELECT CAST(NULL AS VARCHAR) AS ip, CAST(NULL AS VARCHAR) AS workload, CAST(NULL AS VARCHAR) AS owner,
       CAST(NULL AS TIMESTAMPTZ) AS valid_from, CAST(NULL AS TIMESTAMPTZ) AS valid_until
WHERE false;
