-- The router and the position announcements read a topic's queue across sites, oldest first:
-- an index in that order, so reading its head is a range scan instead of a sort of the queue.
CREATE INDEX conversations_by_topic_queue ON conversations (status, topic, queued_at, id);
