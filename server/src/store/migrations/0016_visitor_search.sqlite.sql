-- Inbox search over visitor names and emails (issue #14, "big history"): a trigram index, as
-- 0015 built for message text, so a name or email substring of 3+ characters does not read
-- every visitor (PostgreSQL's pg_trgm indexes on both columns came with 0015).
-- Append-only: a row is added when a visitor is created or its name or email changes, and never
-- deleted; the search re-checks each candidate against the visitor's current row, so an old
-- name finds nothing and a deleted visitor drops out by the join. No rowid is shared with
-- `visitors` (VACUUM may renumber those), and changes are rare (an identify with new details).
-- Visitors with neither a name nor an email (most anonymous ones, deleted when idle) add no row.
CREATE VIRTUAL TABLE visitor_search USING fts5(
    name,
    email,
    visitor_id UNINDEXED,
    content = '',
    contentless_unindexed = 1,
    tokenize = 'trigram case_sensitive 0'
);
INSERT INTO visitor_search (name, email, visitor_id)
    SELECT name, email, id FROM visitors WHERE name <> '' OR email <> '';
CREATE TRIGGER visitor_search_insert AFTER INSERT ON visitors
    WHEN new.name <> '' OR new.email <> '' BEGIN
    INSERT INTO visitor_search (name, email, visitor_id) VALUES (new.name, new.email, new.id);
END;
CREATE TRIGGER visitor_search_update AFTER UPDATE OF name, email ON visitors
    WHEN old.name IS NOT new.name OR old.email IS NOT new.email BEGIN
    INSERT INTO visitor_search (name, email, visitor_id) VALUES (new.name, new.email, new.id);
END;
