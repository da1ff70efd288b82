#!/usr/bin/env bash
# Reproduces Resources/Models/endoscopy-depth (see its MODEL_CARD.md).
# 1. renders the training set (laparoscopy from the bundled CT, sinus from the head phantom,
#    bronchoscopy from the LIDC chest CT, procedural shapes), every 5th camera path held out;
# 2. trains on CPU (1 thread avoids OpenMP oversubscription on a shared 2-core machine);
# 3. renders a held-out scenario (air cavities of an OpenKBP head-and-neck CT; evaluation only,
#    never trained on);
# 4. evaluates on the held-out paths and the held-out scenario.
# Data go to $WORK (default /tmp/depth_work); nothing but the model folder lands in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
export PATH="$PWD/.venv/bin:$PATH"
WORK=${WORK:-/tmp/depth_work}
OUT=${OUT:-Resources/Models/endoscopy-depth}
FRAMES=${FRAMES:-2400}
STEPS=${STEPS:-9000}
MINUTES=${MINUTES:-110}
SHARED=${SURGICALAI_SHARED_DATA:-../shared/data}
export OMP_NUM_THREADS=1
mkdir -p "$WORK"
[ -d "$WORK/train" ] || surgicalai render laparoscopy,sinus,bronchoscopy,shapes -o "$WORK/train" \
    --frames "$FRAMES" --paths $((FRAMES / 20)) --seed 1
surgicalai train-depth "$WORK/train" -o "$WORK/model" --steps "$STEPS" --minutes "$MINUTES" \
    --crop 256x320 --batch-size 8 --threads 1 --val-every 250 --overwrite ${RESUME:+--resume}
[ -d "$WORK/heldout" ] || surgicalai render "ct:$SHARED/ct/openkbp_hn/validation/validation_pt_201_ct.nii.gz" \
    -o "$WORK/heldout" --frames 120 --paths 6 --seed 2 --val-every 1
surgicalai eval-depth "$WORK/model" "$WORK/train" --split val -o "$WORK/eval_val" --overwrite
surgicalai eval-depth "$WORK/model" "$WORK/heldout" -o "$WORK/eval_heldout" --overwrite
rm -rf "$OUT" && cp -r "$WORK/model" "$OUT"
cp "$WORK/model.checkpoints/curves.png" "$OUT/training_curves.png"
# evaluation results, command and MODEL_CARD.md into the card (the weights and their hash stay as trained)
python scripts/finalize_depth_model.py "$OUT" --val "$WORK/eval_val" --heldout "$WORK/eval_heldout"
