-- Nothing to do: 0015 built PostgreSQL's trigram indexes on visitor names and emails; SQLite's
-- visitor search table comes in 0016_visitor_search.sqlite.sql (one migration number for both).
SELECT 1;
