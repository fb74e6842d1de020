-- Auto-resolve (issue #15): a site may resolve conversations whose customer has not answered
-- an agent's reply for this many hours (0: off, the default).
ALTER TABLE sites ADD COLUMN auto_resolve_hours BIGINT NOT NULL DEFAULT 0;
