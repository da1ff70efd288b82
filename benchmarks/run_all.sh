#!/usr/bin/env bash
# Runs every benchmark and rewrites the reports in docs/ (docs/BENCHMARKS.md links them).
# Speed numbers need a quiet machine: run this alone. Training benchmarks need ../shared/data.
#   bash benchmarks/run_all.sh            # speed, accuracy, registration (about 1 h on 2 cores)
#   TRAINING=1 bash benchmarks/run_all.sh # also the OpenKBP and BRATS training runs (about 2 h more)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install -q -e ".[bench]"
# Open3D (the registration peer) needs libusb at import time
.venv/bin/python -c "import open3d" 2>/dev/null || { apt-get update -qq && apt-get install -y -qq libusb-1.0-0; }
source scripts/env.sh
py=.venv/bin/python
DEPTH_DATA=${DEPTH_DATA:-/tmp/depth_work}
$py benchmarks/bench_segmentation.py --out docs/BENCHMARKS_segmentation.md
depth_args=()
[ -d "$DEPTH_DATA/train" ] && depth_args+=(--dataset "$DEPTH_DATA/train" --split val)
[ -d "$DEPTH_DATA/heldout" ] && depth_args+=(--heldout "$DEPTH_DATA/heldout")
$py benchmarks/bench_depth.py "${depth_args[@]}" --out docs/BENCHMARKS_depth.md
$py benchmarks/bench_video_depth.py --out docs/BENCHMARKS_video.md
$py benchmarks/bench_registration.py --frames 5 --trials 4 --out docs/BENCHMARKS_registration.md
$py benchmarks/bench_latency.py --frames 40 --frames-per-key 30 --out docs/BENCHMARKS_latency.md
$py benchmarks/bench_depth_cli.py   # numbers in benchmarks/results_depth_cli.json, copied by hand into docs/BENCHMARKS_video.md
$py benchmarks/bench_stereo.py --out docs/BENCHMARKS_stereo.md
$py benchmarks/bench_web.py   # numbers in benchmarks/results_web.json, copied by hand into docs/BENCHMARKS_web.md
if [ -n "${TRAINING:-}" ]; then
  $py benchmarks/bench_training.py brats --minutes 25
  $py benchmarks/bench_training.py openkbp --minutes 90
fi
