#!/usr/bin/env bash
# Sets everything up on a fresh machine, then runs the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
source "$root/scripts/env.sh"
cd "$root"
# Lint gate first (config: ruff.toml): a finding fails the run before any test.
"$root/.venv/bin/ruff" check .
# The slowest tests are listed at the end, so a run that grows slower shows where.
exec "$root/.venv/bin/python" -m pytest -q --durations=20 "$@"
