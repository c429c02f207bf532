-- Alerts as received, one row per (source, fingerprint): the latest status, and when
-- it was first and last seen. The intake answers 2xx only after this is committed,
-- so a sender retries whatever was not stored.
CREATE TABLE alerts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    source        TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    -- firing | resolved
    status        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    severity      TEXT    NOT NULL DEFAULT '',
    service       TEXT    NOT NULL DEFAULT '',
    -- JSON objects of strings.
    labels        TEXT    NOT NULL,
    annotations   TEXT    NOT NULL,
    url           TEXT    NOT NULL DEFAULT '',
    starts_ms     BIGINT,
    ends_ms       BIGINT,
    first_seen_ms BIGINT  NOT NULL,
    last_seen_ms  BIGINT  NOT NULL,
    resolved_ms   BIGINT,
    -- How many notifications carried it (duplicates included).
    received      BIGINT  NOT NULL DEFAULT 1,
    -- The group (and so the Discord message) it is shown in.
    group_id      BIGINT,
    -- Set while a silence holds it back (`silence:<id>`): stored, counted, not posted.
    held_by       TEXT
);
CREATE UNIQUE INDEX alerts_identity ON alerts (source, fingerprint);
CREATE INDEX alerts_firing ON alerts (status, last_seen_ms);
CREATE INDEX alerts_group ON alerts (group_id);

-- One Discord message (or a few, when it does not fit one) per group of alerts,
-- edited in place as its alerts fire and resolve.
CREATE TABLE alert_groups (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    group_key     TEXT    NOT NULL,
    channel_id    BIGINT  NOT NULL,
    -- P1..P4, from the route or the alerts' severity label
    severity      TEXT    NOT NULL,
    -- 1 when the route pages the on-call role
    page          BIGINT  NOT NULL DEFAULT 0,
    title         TEXT    NOT NULL,
    -- firing | resolved
    status        TEXT    NOT NULL,
    created_ms    BIGINT  NOT NULL,
    updated_ms    BIGINT  NOT NULL,
    -- When the grouper next renders it (NULL: nothing new to show).
    due_ms        BIGINT,
    last_sent_ms  BIGINT,
    -- The group's Discord message ids, in order, comma separated.
    message_ids   TEXT    NOT NULL DEFAULT '',
    -- Bumped when the group fires again after resolving: its nonces change with it.
    generation    BIGINT  NOT NULL DEFAULT 0,
    -- Acknowledge button: who, when (shown on the message).
    acked_by      TEXT,
    acked_ms      BIGINT,
    -- The last "still firing" re-notification (repeat_interval).
    repeat_ms     BIGINT
);
CREATE UNIQUE INDEX alert_groups_key ON alert_groups (group_key);
CREATE INDEX alert_groups_due ON alert_groups (due_ms);

-- Every message Klaxon owes Discord, stored before it is sent and marked when
-- Discord accepted it, so that a crash loses nothing. A create carries a nonce
-- (enforce_nonce), so a retry never shows a duplicate.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id      BIGINT  NOT NULL,
    part          BIGINT  NOT NULL,
    channel_id    BIGINT  NOT NULL,
    -- The message as JSON (core::chat::ChatMessage).
    body          TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    -- Lower goes first: 1 for P1 ... 4 for P4.
    priority      BIGINT  NOT NULL,
    created_ms    BIGINT  NOT NULL,
    next_try_ms   BIGINT  NOT NULL,
    attempts      BIGINT  NOT NULL DEFAULT 0,
    -- pending | sent | superseded | parked
    state         TEXT    NOT NULL,
    sent_ms       BIGINT,
    detail        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX outbox_pending ON outbox (state, priority, id);
CREATE INDEX outbox_message ON outbox (group_id, part, id);
CREATE INDEX outbox_channel ON outbox (channel_id, state, priority, id);

-- /alerts silence: matching alerts are held, not posted, until the silence ends.
CREATE TABLE silences (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- JSON list of [label, op, value]; op is "=" (equal) or "=~" (anchored regex).
    matchers      TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    created_by    TEXT    NOT NULL,
    created_ms    BIGINT  NOT NULL,
    ends_ms       BIGINT  NOT NULL,
    -- Set when someone ended it early (/alerts unsilence).
    ended_ms      BIGINT,
    ended_by      TEXT,
    -- Held alerts still firing were given back to their groups.
    released      BIGINT  NOT NULL DEFAULT 0,
    held          BIGINT  NOT NULL DEFAULT 0,
    -- 1: also ends once every alert it held has resolved.
    until_resolved BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX silences_active ON silences (ends_ms);
