-- `/incident open ... public:false` (issue #15): an incident kept off the public
-- status page, its feed and status.json. 1 = shown (every incident so far), 0 = not.
ALTER TABLE incidents ADD COLUMN is_public BIGINT NOT NULL DEFAULT 1;
