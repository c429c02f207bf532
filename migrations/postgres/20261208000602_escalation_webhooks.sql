-- Webhook targets of escalation steps (ntfy, an SMS gateway): stored with the step
-- and delivered by the leader with retries, so a restart does not lose one and a
-- step fired once posts once (the key is unique).
CREATE TABLE escalation_webhooks (
    id              BIGSERIAL PRIMARY KEY,
    send_key        TEXT    NOT NULL,
    webhook         TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    -- pending | sent | failed
    state           TEXT    NOT NULL DEFAULT 'pending',
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_try_ms     BIGINT  NOT NULL,
    created_ms      BIGINT  NOT NULL,
    sent_ms         BIGINT,
    detail          TEXT    NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX escalation_webhooks_key ON escalation_webhooks (send_key);
CREATE INDEX escalation_webhooks_due ON escalation_webhooks (state, next_try_ms);
