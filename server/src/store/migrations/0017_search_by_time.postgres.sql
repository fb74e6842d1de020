-- Inbox search of a common word (issue #14, "big history"): the newest 5,000 matching text
-- messages are found by walking this index backwards and testing each message, instead of
-- sorting every match the trigram index returns (345,000 for "order" in a million messages:
-- ~1 s). `store/listing.rs` (`dense_lately`) chooses between the two per query. One more
-- b-tree per text message on the write path: ~1 us per row in a bulk insert, within noise of
-- the ~40 us the trigram GIN index costs per row (docs/performance.md).
CREATE INDEX messages_text_by_time ON messages (created_at) WHERE kind = 1;
