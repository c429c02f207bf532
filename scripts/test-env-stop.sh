#!/usr/bin/env bash
# Stop the private dockerd and PostgreSQL that `scripts/test.sh --env-only` (or a run with
# KLAXON_TEST_KEEP=1) left running, using the pids and directory recorded in its state file
# (default /tmp/klaxon-test-env, or $KLAXON_TEST_STATE), then remove that directory.
# It never touches an engine or database that test.sh did not start.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/test.sh" --stop
