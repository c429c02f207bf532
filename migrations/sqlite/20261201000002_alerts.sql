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
    received      BIGINT  NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX alerts_identity ON alerts (source, fingerprint);
CREATE INDEX alerts_firing ON alerts (status, last_seen_ms);
