-- The daily and weekly digests (issue #15): one row per (kind, period) claimed by
-- the leader in the transaction that stores the digest's post, so each digest is
-- posted exactly once across restarts and fail-overs.
CREATE TABLE digests (
    -- 'daily' | 'weekly'
    kind        TEXT    NOT NULL,
    -- The period's local date: '2026-12-08' (daily) or the week's Monday (weekly).
    period      TEXT    NOT NULL,
    claimed_ms  BIGINT  NOT NULL,
    PRIMARY KEY (kind, period)
);
