-- Inbox search on PostgreSQL plans with `enable_seqscan = off` (store/listing.rs,
-- PG_SEARCH_SETTINGS): every part of a search has an index, and the planner, which prices a
-- row's ILIKE like an integer comparison, would otherwise read every visitor for a name in a few
-- percent of them. Attribute values were the one part without one (a LIKE scan); a scan left in
-- the plan with that setting carries its 1e10 "disabled" cost, which drowns every other cost
-- difference in the query (the planner then walked all 100,000 conversations for a page of 1).
-- Without pg_trgm (see 0015) there is no such index and searches plan as before.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX attribute_values_folded_trgm ON attribute_values USING gin (folded gin_trgm_ops);
    END IF;
END
$$;
