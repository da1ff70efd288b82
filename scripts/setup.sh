#!/usr/bin/env bash
# Creates .venv (once) with everything the demo and the tests need; safe to re-run.
# torch is installed first and on its own: the pinned CPU build must be in place before
# anything that depends on torch is resolved, or pip pulls the CUDA build (GBs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SURGICALAI_VENV:-$root/.venv}"
py="${PYTHON:-python3}"
stamp="$venv/.surgicalai-installed"
want="$(cat "$root/pyproject.toml" "$root/scripts/setup.sh" | sha256sum | cut -c1-16)"

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment in $venv"
  "$py" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing dependencies (a few minutes on a fresh machine)"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q "torch==2.13.0"
  "$venv/bin/python" -m pip install -q -e "$root[dev]"
  # nnU-Net parity tests: nnunetv2 and its network library without their timm/torchvision dependency (PyPI's
  # torchvision cannot be imported beside the CPU build of torch); their other dependencies as usual.
  "$venv/bin/python" -m pip install -q --no-deps "nnunetv2==2.8.1" "dynamic-network-architectures==0.4.4"
  "$venv/bin/python" -m pip install -q "acvl-utils==0.2.6" "batchgenerators==0.25.5" "batchgeneratorsv2==0.3.6" \
    "blosc2==4.15.0" "einops==0.8.2" "graphviz==0.21" "imagecodecs==2026.3.6" "nibabel==5.4.2" "pandas==3.1.1" \
    "scikit-image==0.26.0" "scikit-learn==1.9.1" "seaborn==0.13.2" "tifffile==2026.3.3" "yacs==0.1.8"
  echo "$want" > "$stamp"
fi

# Headless rendering: VTK renders offscreen through EGL (Mesa). Install Mesa's EGL where missing.
export VTK_DEFAULT_OPENGL_WINDOW="${VTK_DEFAULT_OPENGL_WINDOW:-vtkEGLRenderWindow}"
if ! "$venv/bin/python" "$root/scripts/check_render.py" >/dev/null 2>&1; then
  echo "[setup] offscreen rendering unavailable; installing Mesa EGL"
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6) >/dev/null
  fi
  "$venv/bin/python" "$root/scripts/check_render.py"
fi

# Browser tests of `surgicalai web` drive Debian's Chromium through Selenium (no browser downloads).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing chromium and chromium-driver for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null \
      || echo "[setup] chromium unavailable: the browser tests will be skipped"
  else
    echo "[setup] chromium/chromedriver absent (needs root and apt): the browser tests will be skipped"
  fi
fi
echo "[setup] ready: $venv"
