-- Indexes for the leader's pruner ([retention]): each batch finds its oldest rows by
-- the time column the rule reads, so a prune costs the rows it deletes, not a scan.
-- (audit_log_at, silences_active and outbox_message, which starts with group_id,
-- already exist.)
CREATE INDEX alerts_resolved ON alerts (resolved_ms);
CREATE INDEX alert_groups_updated ON alert_groups (updated_ms);
CREATE INDEX outbox_sent ON outbox (sent_ms);
CREATE INDEX maintenance_windows_ends ON maintenance_windows (ends_ms);
CREATE INDEX deployments_finished ON deployments (finished_ms);
CREATE INDEX incidents_resolved ON incidents (resolved_ms);
