-- Every command invocation, allowed or denied. Ids are Discord snowflakes (they fit
-- in a signed 64-bit integer); times are milliseconds since the epoch, UTC.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       BIGINT  NOT NULL,
    guild_id    BIGINT,
    channel_id  BIGINT,
    user_id     BIGINT  NOT NULL,
    user_name   TEXT    NOT NULL,
    command     TEXT    NOT NULL,
    arguments   TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    duration_ms BIGINT  NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at_ms);
CREATE INDEX audit_log_user ON audit_log (user_id, at_ms);
