#!/usr/bin/env bash
# Create or update the project's environment: the Python venv (from the lock), the npm front-end
# libraries, and the collected static files. Safe to run again; it only does what is missing.
# PROFILE=gpu installs the GPU profile (vllm + CUDA torch) from requirements/gpu.in instead.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
PROFILE=${PROFILE:-cpu}
LOCK=requirements/lock-cpu.txt
STAMP=.venv/.installed-$PROFILE

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# Local wheel folders (where they exist) hold torch 2.13.0+cpu on this kind of machine.
FIND_LINKS=()
[ -d /opt/wheels ] && FIND_LINKS=(--find-links /opt/wheels)
if [ "$PROFILE" = cpu ]; then
  if [ ! -f "$STAMP" ] || [ "$LOCK" -nt "$STAMP" ]; then
    echo "==> installing the locked CPU profile ($LOCK)"
    # (pip warns about every configured local index folder that lacks a package: noise, dropped)
    .venv/bin/pip install --disable-pip-version-check -q "${FIND_LINKS[@]}" --no-deps -r "$LOCK" \
      2> >(grep -v "WARNING: Location" >&2)
    touch "$STAMP"
  fi
else
  if [ ! -f "$STAMP" ]; then
    echo "==> installing the GPU profile (requirements/gpu.in + dev.in)"
    .venv/bin/pip install --disable-pip-version-check -q -r requirements/gpu.in -r requirements/dev.in
    touch "$STAMP"
  fi
fi
# These break `import torch` with the CPU wheel and nothing needs them.
if .venv/bin/pip show -q torchvision torchaudio torchcodec >/dev/null 2>&1; then
  .venv/bin/pip uninstall -y -q torchvision torchaudio torchcodec || true
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> installing front-end libraries (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
.venv/bin/python manage.py collectstatic --noinput -v0
