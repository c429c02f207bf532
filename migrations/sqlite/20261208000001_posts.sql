-- The outbox of posts that are not alert groups (issue #18): incident cards, notices
-- and pages, reminders, maintenance announcements, the rollout-recovery notice, and
-- later digests and on-call pages. A post is stored before it is sent and delivered
-- by the leader's worker with back-off; posts of one subject (an incident, a window)
-- go out in the order they were stored.
CREATE TABLE posts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    -- incident.card | incident.notice | incident.update | incident.page | reminder |
    -- maintenance | ops | recovery | ...
    kind         TEXT    NOT NULL,
    -- What the post is about ('incident INC-7', 'maintenance 3'): the unit of order.
    subject      TEXT    NOT NULL,
    -- NULL: the subject's room (an incident's thread or channel, once it exists).
    channel_id   BIGINT,
    -- The rendered ChatMessage, JSON.
    body         TEXT    NOT NULL,
    -- The caller's key, when a post must be stored at most once (a step retried after
    -- a crash stores nothing twice); also the nonce Discord enforces. NULL: 'kp' + id.
    nonce        TEXT,
    -- 1: edits the message the subject's earlier post of this kind created.
    edit         INTEGER NOT NULL DEFAULT 0,
    -- Discord's id of the message created.
    message_id   BIGINT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_try_ms  BIGINT  NOT NULL,
    created_ms   BIGINT  NOT NULL,
    sent_ms      BIGINT,
    -- pending | sent | superseded | parked
    state        TEXT    NOT NULL DEFAULT 'pending',
    detail       TEXT    NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX posts_nonce ON posts (nonce);
CREATE INDEX posts_pending ON posts (state, subject, id);
CREATE INDEX posts_created ON posts (kind, subject, edit, state);
