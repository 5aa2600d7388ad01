-- rejects: every input line that did not become a row (REJECT_SCHEMA): source, line_number, raw,
-- reason, class ('noise' or 'malformed'), column.
CREATE OR REPLACE VIEW rejects AS
SELECT * FROM logpipe_rejects;
