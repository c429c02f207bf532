-- The status page's daily roll-ups (issue #15): per component and UTC day, the
-- worst state seen and how long it was degraded, in outage and in maintenance.
-- Written by the leader as it renders the page; the 90-day history bar is read
-- from here. Pruned after 400 days (the page shows at most 365).
CREATE TABLE status_days (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    component       TEXT    NOT NULL,
    -- The day's start, UTC midnight, milliseconds since the epoch.
    day_ms          BIGINT  NOT NULL,
    -- 0 operational, 1 maintenance, 2 degraded, 3 outage (worse is higher).
    worst           BIGINT  NOT NULL,
    degraded_ms     BIGINT  NOT NULL DEFAULT 0,
    outage_ms       BIGINT  NOT NULL DEFAULT 0,
    maintenance_ms  BIGINT  NOT NULL DEFAULT 0,
    updated_ms      BIGINT  NOT NULL
);
CREATE UNIQUE INDEX status_days_component_day ON status_days (component, day_ms);
CREATE INDEX status_days_day ON status_days (day_ms);
