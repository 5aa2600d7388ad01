-- access_log: every parsed row (logpipe/schema.py RECORD_SCHEMA) plus the Hive partition `date`
-- (the UTC day of start_time as text, YYYY-MM-DD, or 'unknown'). logpipe_rows is the Parquet
-- dataset, or in-memory Arrow tables for `logpipe query --input FILE`.
CREATE OR REPLACE VIEW access_log AS
SELECT * FROM logpipe_rows;
