-- Maintenance windows (/maintenance). Everything a window still has to do (announce,
-- set or clear the flag, post the summary of held alerts) is a column here, so a
-- restart picks up where the last run stopped and nothing is announced twice.
CREATE TABLE maintenance_windows (
    id                  BIGSERIAL PRIMARY KEY,
    -- JSON list of the configured service names it covers (`all` is expanded).
    services            TEXT    NOT NULL,
    all_services        BIGINT  NOT NULL DEFAULT 0,
    reason              TEXT    NOT NULL,
    -- 1: set the services' maintenance flag while it runs.
    flag                BIGINT  NOT NULL DEFAULT 0,
    created_by          TEXT    NOT NULL,
    created_by_id       BIGINT  NOT NULL DEFAULT 0,
    created_ms          BIGINT  NOT NULL,
    starts_ms           BIGINT  NOT NULL,
    ends_ms             BIGINT  NOT NULL,
    -- scheduled | active | ended | cancelled
    state               TEXT    NOT NULL,
    started_ms          BIGINT,
    ended_ms            BIGINT,
    ended_by            TEXT,
    -- 1 when its end was applied well after ends_ms (Klaxon was down).
    late                BIGINT  NOT NULL DEFAULT 0,
    -- Lead times (seconds before the start) already announced, comma separated.
    leads_done          TEXT    NOT NULL DEFAULT '',
    scheduled_announced BIGINT  NOT NULL DEFAULT 0,
    start_announced     BIGINT  NOT NULL DEFAULT 0,
    end_announced       BIGINT  NOT NULL DEFAULT 0,
    summary_posted      BIGINT  NOT NULL DEFAULT 0,
    -- '' (not set yet) | on | off | failed-on | failed-off
    flag_state          TEXT    NOT NULL DEFAULT '',
    -- What the flag commands said, per service, for the reply and the announcement.
    flag_detail         TEXT    NOT NULL DEFAULT '',
    -- When the flag was last switched: a failed switch is tried again from then.
    flag_tried_ms       BIGINT  NOT NULL DEFAULT 0,
    -- Alerts held back while it was active.
    held                BIGINT  NOT NULL DEFAULT 0,
    -- Set by /maintenance extend (the end before it) until the new end is announced.
    extended_from_ms    BIGINT,
    -- A step failed (Discord refused a post): the scheduler tries again from then.
    retry_ms            BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX maintenance_windows_state ON maintenance_windows (state, starts_ms);
-- Alerts a silence or a window holds (`maintenance:<id>`), found again at its end.
CREATE INDEX alerts_held ON alerts (held_by);
