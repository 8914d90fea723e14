"""Speed matrix: `credit bench` against the PyTorch reference (bench/reference/sas_torch.py,
the same model and training step) on several shapes, alternating the two in every round.

Usage (from the repository root, after `bench/compare.sh` made the virtual environment):
    bench/.venv/bin/python bench/compare.py --credit target/release/credit --rounds 5 --epochs 3
    ... --shapes paper,cifar --threads 2
    ... --shapes deep,batch64   (a deeper net, 784-500-500-500-10, and the paper's net at batch 64)
    ... --shapes rnn            (the recurrent network of configs/smnist-rnn.toml, against
                                 bench/reference/sas_rnn_torch.py)

Per shape it prints both medians of training images per second with their min-max over the
rounds, the ratio credit/PyTorch, and the fraction of the machine's float32 matrix-product
rate that each reaches in dense-equivalent FLOPs. That rate is measured in the same run
(torch, a 2048x2048 float32 matmul, best of a few, before and after the rounds).
Both tools get --threads threads (credit through RAYON_NUM_THREADS).
The dense CIFAR-format data is generated into a temporary folder (bench/make_cifar_like.py).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_cifar_like  # noqa: E402

MNIST_DIR = "data/mnist"


@dataclass
class Shape:
    sizes: list
    data: str  # "mnist" (idx files in data/mnist) or "cifar" (generated dense random bytes)
    train: int  # training images per epoch
    batch: int
    note: str
    recurrent: bool = False  # sizes = [D, n_rec, classes], 784 / D steps

    def flops_per_image(self):
        if self.recurrent:
            # Per step the six products of a layer of n_rec + D inputs and n_rec units, and
            # the readout's six once.
            d, n, classes = self.sizes
            return (784 // d) * 6 * 2 * (n + d) * n + 6 * 2 * n * classes
        return self.feed_forward_flops()

    def feed_forward_flops(self):
        """Dense-equivalent matrix-product FLOPs of one training image: per layer two forward
        products (mean and variance), two parameter-gradient products, and two input-gradient
        products above the first layer; a multiply-add is 2 FLOPs."""
        total = 0
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            products = 4 if i == 0 else 6
            total += products * 2 * n_in * n_out
        return total


SHAPES = {
    "paper": Shape([784, 100, 100, 10], "mnist", 10000, 500, "the paper's MNIST net"),
    "wide": Shape([784, 1000, 1000, 10], "mnist", 10000, 500, "wide layers"),
    "cifar": Shape([3072, 200, 200, 10], "cifar", 10000, 200, "the paper's CIFAR-10 net, dense random"),
    "mnist60k": Shape([784, 100, 100, 10], "mnist", 60000, 500, "paper net, all MNIST images"),
    "deep": Shape([784, 500, 500, 500, 10], "mnist", 10000, 500, "three wide hidden layers"),
    "batch64": Shape([784, 100, 100, 10], "mnist", 10000, 64, "paper net, batches of 64"),
    "rnn": Shape([28, 100, 10], "mnist", 25600, 128, "recurrent, 28 rows of 28 pixels",
                 recurrent=True),
}
# The shapes run when --shapes is not given (the four of the speed matrix in the README).
DEFAULT_SHAPES = ["paper", "wide", "cifar", "mnist60k"]

MATMUL = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
n, best = 2048, float("inf")
a, b = torch.randn(n, n), torch.randn(n, n)
a @ b
for _ in range(5):
    start = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - start)
print(2 * n**3 / best / 1e9)
"""


def matmul_gflops(threads):
    """The float32 matrix-product rate of this machine on `threads` threads, GFLOP/s."""
    out = subprocess.run([sys.executable, "-c", MATMUL, str(threads)],
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def data_source(shape, cifar_dir):
    return ("idx", MNIST_DIR) if shape.data == "mnist" else ("cifar10", cifar_dir)


def run_credit(binary, shape, cifar_dir, epochs, threads):
    if shape.recurrent:
        return run_credit_config(binary, "configs/smnist-rnn.toml", {"data.test_size": 1000},
                                 shape, epochs, threads)
    data_format, folder = data_source(shape, cifar_dir)
    overrides = {
        "model.sizes": "[" + ",".join(map(str, shape.sizes)) + "]",
        "train.batch_size": shape.batch,
        "data.train_size": shape.train,
        "data.format": data_format,
        "data.dir": folder,
        # Only the training epochs are timed; a smaller test set shortens the untimed
        # evaluation that `credit bench` also runs (its analysis is skipped).
        "data.test_size": 1000,
    }
    return run_credit_config(binary, "configs/mnist.toml", overrides, shape, epochs, threads)


def run_credit_config(binary, config, overrides, shape, epochs, threads):
    sets = [a for key, value in overrides.items() for a in ("--set", f"{key}={value}")]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        subprocess.run(
            [binary, "bench", "--config", config, *sets, "--epochs", str(epochs),
             "--eval-repeats", "1", "--no-analysis", "--json", out],
            check=True, stdout=subprocess.DEVNULL,
            env={**os.environ, "RAYON_NUM_THREADS": str(threads)},
        )
        with open(out) as f:
            report = json.load(f)
    assert report["train_images"] == shape.train, report
    return report["train_images_per_second"]


def run_torch(shape, cifar_dir, epochs, threads):
    data_format, folder = data_source(shape, cifar_dir)
    if shape.recurrent:
        command = ["bench/reference/sas_rnn_torch.py", "--epochs", str(epochs),
                   "--batch", str(shape.batch), "--batches", str(shape.train // shape.batch),
                   "--units", str(shape.sizes[1]), "--data", folder, "--threads", str(threads)]
    else:
        command = ["bench/reference/sas_torch.py", "--epochs", str(epochs),
                   "--sizes", ",".join(map(str, shape.sizes)), "--batch", str(shape.batch),
                   "--train-size", str(shape.train), "--format", data_format, "--data", folder,
                   "--threads", str(threads)]
    result = subprocess.run(
        [sys.executable, *command],
        check=True, capture_output=True, text=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["train_images"] == shape.train, report
    return report["train_images_per_second"]


def load():
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def warn_if_busy(threads):
    """Warns when other processes leave fewer free cores than the benchmark's threads."""
    busy = os.getloadavg()[0]
    if busy + threads > os.cpu_count() + 0.5:
        print(f"warning: {load()} on {os.cpu_count()} cpus. With other work on the cores, thread "
              f"pools that spin between operations (PyTorch's OpenMP, credit's awake workers) "
              f"lose whole time slices: PyTorch eager on 2 threads measured here up to 100x "
              f"slower. These numbers do not compare the tools.", flush=True)


def spread(values):
    return f"{statistics.median(values):8.0f} ({min(values):.0f}-{max(values):.0f})"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--credit", default="target/release/credit")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run (after one warm-up)")
    parser.add_argument("--shapes", default=",".join(DEFAULT_SHAPES),
                        help=f"comma-separated subset of {', '.join(SHAPES)} "
                             f"(default: {', '.join(DEFAULT_SHAPES)})")
    parser.add_argument("--threads", type=int, default=2, help="threads of credit and of PyTorch")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the untimed first run of each shape (it fills the page cache)")
    parser.add_argument("--json", help="also write every measurement to this file")
    args = parser.parse_args()
    names = args.shapes.split(",")
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        parser.error(f"unknown shapes {unknown}; known: {', '.join(SHAPES)}")

    print(f"start: {load()}, {os.cpu_count()} cpus, threads: {args.threads}, "
          f"{args.rounds} rounds of {args.epochs} timed epochs", flush=True)
    warn_if_busy(args.threads)
    thread_counts = sorted({1, 2, args.threads})
    rates = {t: matmul_gflops(t) for t in thread_counts}

    with tempfile.TemporaryDirectory() as cifar_dir:
        if any(SHAPES[n].data == "cifar" for n in names):
            make_cifar_like.write(cifar_dir, seed=0)
        if not args.no_warmup:
            for n in names:
                run_credit(args.credit, SHAPES[n], cifar_dir, 1, args.threads)
                run_torch(SHAPES[n], cifar_dir, 1, args.threads)
        credit = {n: [] for n in names}
        torch = {n: [] for n in names}
        for r in range(args.rounds):
            for n in names:
                # Alternate which tool goes first, so that a slow drift of the machine's load
                # does not always favour the same one.
                runs = [(credit, lambda: run_credit(args.credit, SHAPES[n], cifar_dir, args.epochs, args.threads)),
                        (torch, lambda: run_torch(SHAPES[n], cifar_dir, args.epochs, args.threads))]
                for results, run in runs if r % 2 == 0 else runs[::-1]:
                    results[n].append(run())
                print(f"round {r + 1} {n:9}: credit {credit[n][-1]:8.0f} images/s, "
                      f"pytorch {torch[n][-1]:8.0f} images/s", flush=True)

    after = {t: matmul_gflops(t) for t in thread_counts}
    peak = {t: max(rates[t], after[t]) for t in thread_counts}
    print(f"end: {load()} (counting this benchmark's own threads)")
    print("float32 matmul 2048^3 (best of 5, before / after the rounds): " + "; ".join(
        f"{t} thread{'s' if t > 1 else ''} {rates[t]:.0f} / {after[t]:.0f} GFLOP/s" for t in thread_counts))
    rate = peak[args.threads]
    print(f"fractions below are of {rate:.0f} GFLOP/s (threads: {args.threads}, the better of the two)\n")

    header = (f"{'shape':9} {'sizes':17} {'data':5} {'images':>6} {'batch':>5} "
              f"{'credit img/s (min-max)':>26} {'pytorch img/s (min-max)':>26} {'ratio':>6} "
              f"{'credit':>7} {'pytorch':>7}")
    print(header)
    print("-" * len(header))
    rows = []
    for n in names:
        shape = SHAPES[n]
        c, t = statistics.median(credit[n]), statistics.median(torch[n])
        fc, ft = c * shape.flops_per_image() / 1e9 / rate, t * shape.flops_per_image() / 1e9 / rate
        print(f"{n:9} {'-'.join(map(str, shape.sizes)):17} {shape.data:5} {shape.train:6} {shape.batch:5} "
              f"{spread(credit[n]):>26} {spread(torch[n]):>26} {c / t:6.2f} {100 * fc:6.1f}% {100 * ft:6.1f}%")
        rows.append({"shape": n, "sizes": shape.sizes, "data": shape.data, "train_images": shape.train,
                     "batch": shape.batch, "flops_per_image": shape.flops_per_image(),
                     "credit_images_per_second": credit[n], "pytorch_images_per_second": torch[n],
                     "ratio": c / t, "credit_fraction": fc, "pytorch_fraction": ft})
    print("\ncredit / pytorch columns at the right: fraction of the measured matmul rate, "
          "in dense-equivalent FLOPs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "threads": args.threads,
                       "rounds": args.rounds, "epochs": args.epochs,
                       "matmul_gflops_before": rates, "matmul_gflops_after": after,
                       "shapes": rows}, f, indent=1)


if __name__ == "__main__":
    main()
