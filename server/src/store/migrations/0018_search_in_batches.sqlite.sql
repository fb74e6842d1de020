-- Message search off the append path (issue #14): the FTS5 trigram index of 0015 was filled by
-- a trigger, so every message's savepoint flushed a one-row FTS5 segment and FTS5 merged them
-- again and again: ~20% of the writer thread (12% of all server CPU) at 1,000 msg/s. Now the
-- writer indexes the messages written since the last run in one statement, at most every
-- 200 ms (`store/search_index.rs`), and a search also scans the not-yet-indexed tail
-- (`rowid > messages_rowid`, a few hundred rows at most), so a message is found the moment its
-- send is acknowledged, as before. The index and its progress change in one transaction, so a
-- crash between two runs loses nothing: the next run starts from the stored progress.
-- `messages` has no deletes and rowids only grow (no AUTOINCREMENT is needed for that while no
-- row is deleted); everything written before this migration was indexed by the trigger.
DROP TRIGGER message_search_insert;
CREATE TABLE search_progress (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    messages_rowid INTEGER NOT NULL
);
INSERT INTO search_progress (id, messages_rowid) SELECT 1, COALESCE(MAX(rowid), 0) FROM messages;
