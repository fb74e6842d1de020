-- Nothing on SQLite: its message search (0015) reads FTS5 rowids, which already come newest
-- first. PostgreSQL's counterpart adds a time index for its common-word search.
SELECT 1;
