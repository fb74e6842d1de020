-- Per-site widget texts (issue #15): a JSON array of [key, text] pairs ('' = none).
ALTER TABLE sites ADD COLUMN widget_texts TEXT NOT NULL DEFAULT '';
