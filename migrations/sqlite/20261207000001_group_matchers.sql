-- A group's identity as structured silence matchers (JSON), written when the group is
-- created: "Silence 1 h" on its message silences exactly this group. Groups created
-- before have NULL here and fall back to their key.
ALTER TABLE alert_groups ADD COLUMN matchers TEXT;
