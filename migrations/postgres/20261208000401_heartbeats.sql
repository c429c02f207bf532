-- Heartbeats (dead-man's switches for cron jobs): one row per configured
-- heartbeat, so a restart neither forgets a deadline nor a raised alert.
-- Times are milliseconds since the epoch.
CREATE TABLE heartbeats (
    name          TEXT    PRIMARY KEY,
    -- 'ok' (waiting for the next run), 'missed' (HeartbeatMissed raised),
    -- 'failed' (HeartbeatFailed raised).
    state         TEXT    NOT NULL,
    last_ok_ms    BIGINT,
    last_fail_ms  BIGINT,
    -- When the heartbeat counts as missed: last run + period + grace (or, after
    -- a start-up, at least start-up + grace).
    deadline_ms   BIGINT  NOT NULL,
    updated_ms    BIGINT  NOT NULL
);
