-- Snooze (issue #15): NULL = awake; 0 = until the customer's next message; > 0 = until then
-- (ms since epoch). The partial index serves the one-minute wake-up pass.
ALTER TABLE conversations ADD COLUMN snoozed_until BIGINT;
CREATE INDEX conversations_snoozed ON conversations (snoozed_until) WHERE snoozed_until > 0;
