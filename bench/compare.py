"""Runs `credit bench` and the PyTorch reference alternately and compares training throughput.

Usage (from the repository root, after `bench/compare.sh` made the virtual environment):
    python bench/compare.py --credit target/release/credit --rounds 5 --epochs 3
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

SIZES = [784, 100, 100, 10]
BATCH = 500
TRAIN = 10000


def flops_per_epoch():
    """Matrix-product FLOPs of one epoch: per layer two forward products (mean and variance),
    two weight-gradient products, and two input-gradient products above the first layer."""
    total = 0
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        products = 4 if i == 0 else 6
        total += products * 2 * BATCH * n_in * n_out
    return total * TRAIN // BATCH


def run_credit(binary, epochs):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        subprocess.run(
            [binary, "bench", "--config", "configs/mnist.toml", "--epochs", str(epochs),
             "--eval-repeats", "1", "--json", out],
            check=True, stdout=subprocess.DEVNULL,
        )
        with open(out) as f:
            return json.load(f)["train_images_per_second"]


def run_torch(epochs):
    result = subprocess.run(
        [sys.executable, "bench/reference/sas_torch.py", "--epochs", str(epochs)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])["train_images_per_second"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--credit", default="target/release/credit")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run")
    parser.add_argument("--peak-gflops", type=float, default=157.0,
                        help="machine peak, float32 (2 AVX2/FMA cores at 2.45 GHz: 157)")
    args = parser.parse_args()

    run_credit(args.credit, 1)
    run_torch(1)
    credit, torch = [], []
    for r in range(args.rounds):
        credit.append(run_credit(args.credit, args.epochs))
        torch.append(run_torch(args.epochs))
        print(f"round {r + 1}: credit {credit[-1]:.0f} images/s, pytorch {torch[-1]:.0f} images/s", flush=True)
    flops = flops_per_epoch() / TRAIN
    for name, values in [("credit", credit), ("pytorch", torch)]:
        median = statistics.median(values)
        gflops = median * flops / 1e9
        print(f"{name:8} median {median:8.0f} images/s (min {min(values):.0f}, max {max(values):.0f}), "
              f"{gflops:.1f} GFLOP/s = {100 * gflops / args.peak_gflops:.0f}% of {args.peak_gflops:.0f}")
    print(f"ratio credit/pytorch: {statistics.median(credit) / statistics.median(torch):.2f}")


if __name__ == "__main__":
    main()
