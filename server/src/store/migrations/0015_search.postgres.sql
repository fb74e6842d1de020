-- Inbox search (issue #14, "big history"): trigram GIN indexes (pg_trgm) over message text and
-- visitor names and emails, so `ListConversations.query` (a case-insensitive substring, ILIKE)
-- finds a match among a million messages without reading them; the same answers as SQLite's
-- FTS5 trigram index (0015_search.sqlite.sql). Only visitor/agent text (kind 1) is indexed.
-- Without pg_trgm (a server built without contrib, or a role that may not create it) the
-- search still works, by scanning; the server logs a warning at start.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'pg_trgm could not be created (%): inbox search scans messages', SQLERRM;
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX messages_text_trgm ON messages USING gin (text gin_trgm_ops) WHERE kind = 1;
        CREATE INDEX visitors_name_trgm ON visitors USING gin (name gin_trgm_ops);
        CREATE INDEX visitors_email_trgm ON visitors USING gin (email gin_trgm_ops);
    END IF;
END
$$;
