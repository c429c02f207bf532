-- Status page subscriptions (issue #15): confirmed email subscribers, the public
-- updates seen on the page, and the durable outbox of their deliveries (email and
-- webhooks), each subscriber getting each update at most once.
--
-- Addresses are stored only after confirmation: the confirmation link carries the
-- address in an HMAC-signed token (signed with status_keys.secret), so an
-- unconfirmed address is in no table.
CREATE TABLE status_subscribers (
    id           BIGSERIAL PRIMARY KEY,
    email        TEXT    NOT NULL,
    -- Random; the unsubscribe link's token.
    token        TEXT    NOT NULL,
    confirmed_ms BIGINT  NOT NULL
);
CREATE UNIQUE INDEX status_subscribers_email ON status_subscribers (email);
CREATE UNIQUE INDEX status_subscribers_token ON status_subscribers (token);

-- One public update as the page showed it: 'INC-7@1765200000000/Identified',
-- 'maintenance/...'. The body is the JSON sent to webhooks and rendered in mails.
CREATE TABLE status_updates (
    id          BIGSERIAL PRIMARY KEY,
    ukey        TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    at_ms       BIGINT  NOT NULL,
    created_ms  BIGINT  NOT NULL
);
CREATE UNIQUE INDEX status_updates_ukey ON status_updates (ukey);
CREATE INDEX status_updates_created ON status_updates (created_ms);

CREATE TABLE status_deliveries (
    id            BIGSERIAL PRIMARY KEY,
    update_id     BIGINT  NOT NULL,
    -- 'email:<subscriber id>' | 'webhook:<name>': with update_id, the once-only key.
    target        TEXT    NOT NULL,
    -- The email subscriber (NULL for a webhook).
    subscriber_id BIGINT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_try_ms   BIGINT  NOT NULL,
    created_ms    BIGINT  NOT NULL,
    sent_ms       BIGINT,
    -- pending | sent | parked
    state         TEXT    NOT NULL DEFAULT 'pending',
    detail        TEXT    NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX status_deliveries_once ON status_deliveries (target, update_id);
CREATE INDEX status_deliveries_due ON status_deliveries (state, next_try_ms);
CREATE INDEX status_deliveries_sent ON status_deliveries (sent_ms);
CREATE INDEX status_deliveries_subscriber ON status_deliveries (subscriber_id);

-- Keys Klaxon makes for itself: 'confirm' signs the confirmation tokens.
CREATE TABLE status_keys (
    name   TEXT PRIMARY KEY,
    secret TEXT NOT NULL
);
