#!/usr/bin/env bash
# Sets everything up on a fresh machine, then runs the demo on the bundled sample data.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
source "$root/scripts/env.sh"
exec "$root/.venv/bin/surgicalai" demo -o "${1:-$root/demo_output}"
