-- Incidents, their timelines and follow-up actions. Times are milliseconds since the
-- epoch, UTC; enums are TEXT; Discord ids are BIGINT. The id is the incident's number
-- (INC-<id>): AUTOINCREMENT / BIGSERIAL never hand out a number twice, even after a
-- delete or a rolled-back insert.
CREATE TABLE incidents (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    title               TEXT    NOT NULL,
    -- P1 | P2 | P3 | P4
    severity            TEXT    NOT NULL,
    -- investigating | identified | monitoring | resolved
    status              TEXT    NOT NULL,
    service             TEXT,
    summary             TEXT    NOT NULL,
    guild_id            BIGINT,
    -- The incident's thread (or channel) and the opening card in it.
    channel_id          BIGINT,
    card_message_id     BIGINT,
    commander_id        BIGINT  NOT NULL,
    commander_name      TEXT    NOT NULL,
    comms_id            BIGINT,
    comms_name          TEXT,
    scribe_id           BIGINT,
    scribe_name         TEXT,
    opened_ms           BIGINT  NOT NULL,
    acked_ms            BIGINT,
    acked_by_name       TEXT,
    resolved_ms         BIGINT,
    last_update_ms      BIGINT  NOT NULL,
    -- When the reminder worker next re-pages (no ack) or nudges the commander (no
    -- status update); NULL when nothing is due. Kept here so a restart loses none.
    next_page_ms        BIGINT,
    next_update_ms      BIGINT,
    root_cause          TEXT    NOT NULL DEFAULT '',
    resolution          TEXT    NOT NULL DEFAULT '',
    impact              TEXT    NOT NULL DEFAULT '',
    lessons             TEXT    NOT NULL DEFAULT '',
    postmortem          TEXT,
    postmortem_ms       BIGINT
);
CREATE INDEX incidents_open ON incidents (status, id);
CREATE INDEX incidents_channel ON incidents (channel_id);
CREATE INDEX incidents_page_due ON incidents (next_page_ms);
CREATE INDEX incidents_update_due ON incidents (next_update_ms);

CREATE TABLE incident_timeline (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id   BIGINT  NOT NULL REFERENCES incidents (id),
    at_ms         BIGINT  NOT NULL,
    -- opened | ack | status | severity | role | note | action | resolved | command |
    -- alert | message | reminder
    kind          TEXT    NOT NULL,
    actor_id      BIGINT,
    actor_name    TEXT    NOT NULL,
    text          TEXT    NOT NULL,
    -- A captured chat message: its id (at most one entry per message and incident),
    -- link and attachment URLs (one per line); deleted when the message was.
    message_id    BIGINT,
    permalink     TEXT    NOT NULL DEFAULT '',
    attachments   TEXT    NOT NULL DEFAULT '',
    edited_ms     BIGINT,
    deleted       BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX incident_timeline_incident ON incident_timeline (incident_id, at_ms, id);
CREATE UNIQUE INDEX incident_timeline_message ON incident_timeline (incident_id, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX incident_timeline_by_message ON incident_timeline (message_id) WHERE message_id IS NOT NULL;

CREATE TABLE incident_actions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id   BIGINT  NOT NULL REFERENCES incidents (id),
    -- The action's number within its incident (1, 2, ...), as members refer to it.
    number        BIGINT  NOT NULL,
    text          TEXT    NOT NULL,
    created_ms    BIGINT  NOT NULL,
    created_by    TEXT    NOT NULL,
    done_ms       BIGINT,
    done_by       TEXT
);
CREATE UNIQUE INDEX incident_actions_number ON incident_actions (incident_id, number);
