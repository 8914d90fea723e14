#!/usr/bin/env bash
# Speed matrix: credit against a PyTorch implementation of the same model and training step,
# on the paper's MNIST shape, a wide one, the CIFAR-10 shape on generated dense data and all
# 60,000 MNIST images (see bench/compare.py). Creates bench/.venv with torch and numpy from
# PyPI (a large download), builds credit unless CREDIT names a binary, and runs both
# alternately:
#   bench/compare.sh [--rounds 5] [--epochs 3] [--shapes paper,wide,cifar,mnist60k] [--threads 2]
#   CREDIT=/path/to/credit bench/compare.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet torch numpy
fi
if [ -z "${CREDIT:-}" ]; then
  cargo build --release -p credit-cli
  CREDIT="${CARGO_TARGET_DIR:-target}/release/credit"
fi
exec bench/.venv/bin/python bench/compare.py --credit "$CREDIT" "$@"
