-- Escalations (issue #14): one row per escalation policy run for an incident, an
-- alert group or a page by hand. The leader fires due steps from here, so a restart
-- or a fail-over resumes the chain; each step's messages go through the posts
-- outbox under a key made of (escalation, round, step), so no step is sent twice.
CREATE TABLE escalations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Starts once per key: 'incident 7', 'group 12 g0', 'page 1700000000000 42'.
    start_key       TEXT    NOT NULL,
    -- 'incident' | 'group' | 'page'
    subject_kind    TEXT    NOT NULL,
    -- The incident's or the alert group's id (0 for a page by hand).
    subject_id      BIGINT  NOT NULL,
    -- The policy's name; '' for a page by hand (its one target is in target).
    policy          TEXT    NOT NULL,
    target          TEXT    NOT NULL DEFAULT '',
    title           TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    -- Where the channel mentions go, and what the DM links to.
    channel_id      BIGINT  NOT NULL,
    link            TEXT    NOT NULL DEFAULT '',
    started_ms      BIGINT  NOT NULL,
    -- The next step to fire: its round (0 = the first run of the chain) and index.
    round           BIGINT  NOT NULL DEFAULT 0,
    step            BIGINT  NOT NULL DEFAULT 0,
    -- When it is due; NULL once the escalation is over.
    next_ms         BIGINT,
    -- active | acked | stopped | done
    state           TEXT    NOT NULL DEFAULT 'active',
    why             TEXT    NOT NULL DEFAULT '',
    first_page_ms   BIGINT,
    ended_ms        BIGINT,
    -- Who was paged, comma separated user ids (the DM button checks the clicker).
    paged           TEXT    NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX escalations_start_key ON escalations (start_key);
CREATE INDEX escalations_due ON escalations (state, next_ms);
CREATE INDEX escalations_subject ON escalations (subject_kind, subject_id);

-- MTTA: from the first page to the acknowledgement (NULL: never paged by a policy).
ALTER TABLE incidents ADD COLUMN first_page_ms BIGINT;
