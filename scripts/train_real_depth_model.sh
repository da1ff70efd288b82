#!/usr/bin/env bash
# Trains the sim-to-real endoscopy-depth model (issue 10) on renders of CTs that may ship only:
# laparoscopy (TotalSegmentator example CT), bronchoscopy (LIDC-IDRI-0314), procedural shapes, the
# limb CTs (STS_001/002), at two cameras: square pixels with an 80 degree field of view, and a wide
# 110 degree lens squeezed from 16:9 into the 5:4 input (as HD endoscope video reaches the network).
# No head-phantom, OpenKBP or real frame is trained on. Appearance is made endoscopic by
# SurgicalDepthLib/depth/augment.py at training time.
# Resumable in legs: the packed checkpoint in training/endoscopy-depth/last.packed.pt is unpacked when
# the work folder has none, and repacked after each leg (commit it so the next leg continues).
#   LEG_MINUTES=110 bash scripts/train_real_depth_model.sh     # one leg; MINUTES = budget of all legs
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export PYTHONPATH="$PWD:$PWD/SegmentationAI:$PWD/SurgicalDepth" OMP_NUM_THREADS=${THREADS:-2}
PY=${PY:-python}
WORK=${WORK:-/work/data-depth}
MINUTES=${MINUTES:-600}
LEG_MINUTES=${LEG_MINUTES:-110}
THREADS=${THREADS:-2}
SHARED=${SURGICALAI_SHARED_DATA:-../shared/data}
PACKED=training/endoscopy-depth/last.packed.pt
mkdir -p "$WORK" training/endoscopy-depth
cli() { nice -n 10 "$PY" -m surgicalai.cli "$@"; }
echo '{"fx": 111.04, "fy": 157.92, "cx": 159.5, "cy": 127.5, "width": 320, "height": 256}' > "$WORK/cam_wide169.json"
[ -d "$WORK/sq80" ] || cli render laparoscopy,bronchoscopy,shapes -o "$WORK/sq80" --frames 1200 --paths 60 --seed 11
[ -d "$WORK/wide169" ] || cli render laparoscopy,bronchoscopy,shapes -o "$WORK/wide169" --frames 600 --paths 30 \
    --seed 12 --camera "$WORK/cam_wide169.json"
LIMBS=$(printf "limb:$SHARED/ct/sts_limb/STS_%s_CT_image.nii.gz," 001 002 003)
[ -d "$WORK/limb" ] || cli render "${LIMBS%,}" -o "$WORK/limb" --frames 300 --paths 15 --seed 13
DATASETS=("$WORK/sq80" "$WORK/wide169" "$WORK/limb")
mkdir -p "$WORK/model.checkpoints"
if [ ! -f "$WORK/model.checkpoints/last.pt" ] && [ -f "$PACKED" ]; then
    "$PY" scripts/depth_checkpoint_pack.py unpack "$PACKED" "$WORK/model.checkpoints/last.pt"
fi
cli train-depth "${DATASETS[@]}" -o "$WORK/model" --steps 60000 --minutes "$MINUTES" \
    --leg-minutes "$LEG_MINUTES" --crop 256x320 --batch-size 8 --threads "$THREADS" --val-every 250 \
    --silog-lambda 0.85 --gradient-weight 0.5 --augment-strength 0.7 --overwrite --resume
"$PY" scripts/depth_checkpoint_pack.py pack "$WORK/model.checkpoints/last.pt" "$PACKED"
