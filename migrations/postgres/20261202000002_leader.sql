-- Which replica leads (PostgreSQL): holds the Discord gateway session, runs the
-- schedulers and drains the outbox. Times are the database's own clock, in ms.
CREATE TABLE leader_lease (
    name        TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    -- Grows with every new holder.
    epoch       BIGINT  NOT NULL,
    expires_ms  BIGINT  NOT NULL,
    renewed_ms  BIGINT  NOT NULL
);
