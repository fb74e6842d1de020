-- Opening hours (issue #15): the site's IANA time zone ('' = UTC), its weekly intervals
-- ("<weekday>:<open minute>-<close minute>" per line, empty = always open), closed local dates
-- ("YYYY-MM-DD" per line) and the out-of-office reply ('' = none).
ALTER TABLE sites ADD COLUMN time_zone TEXT NOT NULL DEFAULT '';
ALTER TABLE sites ADD COLUMN opening_hours TEXT NOT NULL DEFAULT '';
ALTER TABLE sites ADD COLUMN closed_dates TEXT NOT NULL DEFAULT '';
ALTER TABLE sites ADD COLUMN away_message TEXT NOT NULL DEFAULT '';
