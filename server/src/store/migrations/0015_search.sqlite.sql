-- Inbox search (issue #14, "big history"): a trigram index over message text, so
-- `ListConversations.query` finds a substring among a million messages without reading them.
-- Trigrams keep the search what it was (a case-insensitive substring, in any script: Japanese
-- has no spaces for a word index to split on) and give the same answers as PostgreSQL's
-- pg_trgm index (0015_search.postgres.sql). Contentless: the text lives once, in `messages`;
-- only the conversation id is stored beside the index (contentless_unindexed), so a match
-- names its conversation without a lookup by rowid (which VACUUM may renumber). Only
-- visitor/agent text (kind 1) is indexed: notes and system lines are not searched.
CREATE VIRTUAL TABLE message_search USING fts5(
    text,
    conversation_id UNINDEXED,
    content = '',
    contentless_delete = 1,
    contentless_unindexed = 1,
    tokenize = 'trigram case_sensitive 0'
);
INSERT INTO message_search (text, conversation_id)
    SELECT text, conversation_id FROM messages WHERE kind = 1;
CREATE TRIGGER message_search_insert AFTER INSERT ON messages WHEN new.kind = 1 BEGIN
    INSERT INTO message_search (text, conversation_id) VALUES (new.text, new.conversation_id);
END;
