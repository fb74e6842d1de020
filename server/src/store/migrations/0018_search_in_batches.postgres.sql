-- Nothing on PostgreSQL: its trigram GIN index (0015) already defers its work (GIN's pending
-- list, merged in bulk), so the append path does not pay per message what SQLite's FTS5
-- trigger did (0018_search_in_batches.sqlite.sql).
SELECT 1;
