-- title: Sources and their destinations
-- description: Per source workload (namespace/owner with --pods, else its IP), the external
--   destinations it talks to, with requests, bytes up and down (null: the format logs no bytes),
--   and blocked attempts. The clients of a format that logs no client address are one row, named so.
-- @column source the client: its IP, or its workload (namespace/owner with --pods, or as ztunnel logs it)
-- @column source_ips its IPs (a workload's pods' several)
-- @column destination_count destinations it called (destinations lists them), one not in the logs too
-- @column blocked its requests that were blocked (egress_kind blocked: BlackHoleCluster or block_all)
-- @column unregistered its requests through PassthroughCluster (egress_kind passthrough: no ServiceEntry)
-- @param since '' window start (ISO time); empty = the data's first record
-- @param until '' window end (ISO time, exclusive); empty = after the last record
SELECT
    client_named(source_workload, source_ip) AS source,
    client_ips(source_ip) AS source_ips,
    -- (each destination listed, the one not in the logs too)
    count(DISTINCT destination_named(destination)) AS destination_count,
    list_transform(list_sort(list(DISTINCT destination), 'ASC', 'NULLS LAST'), lambda d: destination_named(d)) AS destinations,
    count(*) AS requests,
    CAST(sum(bytes_received) AS BIGINT) AS bytes_up,
    CAST(sum(bytes_sent) AS BIGINT) AS bytes_down,
    count(*) FILTER (WHERE egress_kind = 'blocked') AS blocked,
    count(*) FILTER (WHERE egress_kind = 'passthrough') AS unregistered,
    evidence_time(min(start_time)) AS first_seen,
    evidence_time(max(start_time)) AS last_seen
FROM egress
WHERE start_time >= coalesce(CAST(nullif($since, '') AS TIMESTAMPTZ), '-infinity'::TIMESTAMPTZ)
  AND start_time < coalesce(CAST(nullif($until, '') AS TIMESTAMPTZ), 'infinity'::TIMESTAMPTZ)
   -- rows without a time (a format with no %START_TIME%) belong to no window but the whole data's
   OR (start_time IS NULL AND coalesce($since, '') = '' AND coalesce($until, '') = '')
GROUP BY client_named(source_workload, source_ip)
ORDER BY requests DESC, source
