-- Pruning the posts outbox (issue #18, [retention] outbox_days): closed posts by the
-- time they were closed.
CREATE INDEX posts_sent ON posts (sent_ms);
