-- On-call overrides: a member takes a schedule's shift for [starts_ms, ends_ms).
-- The newest (highest id) wins where overrides overlap; a cancelled one stays for
-- the record with cancelled_ms set.
CREATE TABLE oncall_overrides (
    id              BIGSERIAL PRIMARY KEY,
    -- The configured schedule's name, as written in [[oncall.schedules]].
    schedule        TEXT    NOT NULL,
    member_id       BIGINT  NOT NULL,
    starts_ms       BIGINT  NOT NULL,
    ends_ms         BIGINT  NOT NULL,
    created_by      TEXT    NOT NULL,
    created_by_id   BIGINT  NOT NULL,
    created_ms      BIGINT  NOT NULL,
    cancelled_ms    BIGINT,
    cancelled_by    TEXT
);
CREATE INDEX oncall_overrides_schedule ON oncall_overrides (schedule, ends_ms);

-- Hand-offs the leader saw: one row each time a schedule's on-call member changed.
-- The row is the durable marker that the hand-off is announced once and the
-- sync_role moved once, across restarts and fail-overs.
CREATE TABLE oncall_handoffs (
    id              BIGSERIAL PRIMARY KEY,
    schedule        TEXT    NOT NULL,
    -- 0: nobody (before the rotation's start, or Klaxon's first look).
    from_member     BIGINT  NOT NULL,
    to_member       BIGINT  NOT NULL,
    at_ms           BIGINT  NOT NULL,
    announced_ms    BIGINT,
    role_moved_ms   BIGINT
);
CREATE UNIQUE INDEX oncall_handoffs_once ON oncall_handoffs (schedule, at_ms);
