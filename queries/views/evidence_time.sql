-- evidence_time: a time as a finding's evidence gives it (first_seen, last_seen, a request's
-- start_time): to the millisecond, the precision of Envoy's %START_TIME% (its default format), so that
-- every finding's times read alike; ztunnel's microseconds are cut (truncated, not rounded: the text
-- is the logged one's up to its milliseconds, and the millisecond it names holds the logged time).
-- The data (start_time, `logpipe query --sql`) keeps them.
CREATE OR REPLACE MACRO evidence_time(t) AS date_trunc('millisecond', t);
