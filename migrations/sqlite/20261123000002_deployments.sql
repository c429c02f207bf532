-- Klaxon's deployment history: every /rollback and /restart an operator confirmed,
-- and each of its steps. Times are milliseconds since the epoch, UTC; enums are TEXT.
CREATE TABLE deployments (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    service           TEXT    NOT NULL,
    container         TEXT    NOT NULL,
    -- rollback | restart
    action            TEXT    NOT NULL,
    -- in_progress | succeeded | reverted | failed | interrupted
    status            TEXT    NOT NULL,
    from_image        TEXT    NOT NULL,
    from_image_id     TEXT    NOT NULL,
    to_image          TEXT    NOT NULL,
    to_image_id       TEXT    NOT NULL,
    -- The old container's temporary name while a rollback runs, so that a
    -- restarted Klaxon can find it and put it back.
    kept_container    TEXT    NOT NULL,
    requested_by      BIGINT  NOT NULL,
    requested_by_name TEXT    NOT NULL,
    approved_by       TEXT    NOT NULL,
    started_ms        BIGINT  NOT NULL,
    finished_ms       BIGINT,
    detail            TEXT    NOT NULL
);
CREATE INDEX deployments_service ON deployments (service, started_ms);
-- At most one operation in progress per service, across replicas sharing a database.
CREATE UNIQUE INDEX deployments_one_in_progress ON deployments (service) WHERE status = 'in_progress';

CREATE TABLE deployment_steps (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id BIGINT  NOT NULL REFERENCES deployments (id),
    at_ms         BIGINT  NOT NULL,
    step          TEXT    NOT NULL,
    detail        TEXT    NOT NULL
);
CREATE INDEX deployment_steps_deployment ON deployment_steps (deployment_id, id);
