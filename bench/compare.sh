#!/usr/bin/env bash
# Optional comparison with a PyTorch implementation of the same model and training step.
# Creates bench/.venv with torch and numpy from PyPI (a large download), builds credit, and
# runs both alternately: bench/compare.sh [--rounds 5] [--epochs 3]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet torch numpy
fi
cargo build --release -p credit-cli
target_dir="${CARGO_TARGET_DIR:-target}"
exec bench/.venv/bin/python bench/compare.py --credit "$target_dir/release/credit" "$@"
