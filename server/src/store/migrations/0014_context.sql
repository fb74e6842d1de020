-- Customer context (issue #15): custom attributes a site declares (a JSON array in
-- sites.attributes), their values on visitors and conversations, and each visitor's page trail.
-- attribute_values answers searches ("conversations whose orderId is 1001": the index on the
-- folded value) on both engines alike; the owners' own `attributes` columns (JSON arrays of
-- [key, value], by key) are what every visitor and conversation read returns, without a join.
ALTER TABLE sites ADD COLUMN attributes TEXT NOT NULL DEFAULT '';
CREATE TABLE attribute_values (
    -- A visitor id (v_...) or a conversation id (c_...).
    owner_id TEXT NOT NULL,
    key TEXT NOT NULL,
    site_id TEXT NOT NULL REFERENCES sites(id),
    value TEXT NOT NULL,
    -- LOWER(value): what searches compare.
    folded TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (owner_id, key)
);
CREATE INDEX attribute_values_by_value ON attribute_values (site_id, key, folded);
ALTER TABLE visitors ADD COLUMN attributes TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN attributes TEXT NOT NULL DEFAULT '';
-- The last pages seen, newest first: a JSON array of [url, title, referrer, at_ms].
ALTER TABLE visitors ADD COLUMN pages TEXT NOT NULL DEFAULT '';
