"""Runs the authors' 28x28 recurrent script beside credit.

The script is `Results/MNIST digit classification/BPTT-SAS-28by28.py` of
ZouWenXuan/Spike-and-Slab-RNN (Zou, Li & Huang, PRE 107, 024307, 2023). Its code is loaded,
not copied: the module-level definitions (functions and classes) are executed from the
file; the data loading and the training loop below it are not, and are replaced here by
the two jobs this script does:

    python3 bench/reference/authors_rnn.py train --script PATH --seed S --epochs E
        The script's protocol (its `train` and `test` functions, its learning-rate `decay`,
        one `RNN(28, 100, 10)` with `np.random.seed(S)` set before it is built) on the
        committed MNIST of data/mnist (60,000 training images reshuffled every epoch, 200
        batches of 128, the 10,000 test images). Prints one JSON line per epoch: the
        mean-field and the sampled test accuracy and the connection classes per matrix.

    CREDIT_TRAJECTORY_DUMP=/tmp/rnn-traj cargo test --release -p credit-tests --test rnn \\
        credit_takes_the_steps
    python3 bench/reference/authors_rnn.py trajectory --script PATH --dump /tmp/rnn-traj
        The script's own `run_bptt` (BPTT, `grad_clip`, its Adam, the clamps) on the inputs,
        initial parameters and noise of tests/rnn.rs's trajectory check, compared after
        every step with that test's float64 oracle (which credit matches). Exits 1 if a
        distance exceeds --tolerance.

PATH is a checkout of the authors' repository (`git show HEAD:"Results/MNIST digit
classification/BPTT-SAS-28by28.py"`). Needs numpy.
"""

import argparse
import ast
import contextlib
import gzip
import json
import os
import sys

import numpy


def load_definitions(path):
    """The script's imports, functions and classes, executed; nothing else of it."""
    source = open(path, encoding="utf-8").read()
    tree = ast.parse(source, path)
    keep = (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    tree.body = [
        node for node in tree.body
        if isinstance(node, keep) and not (
            isinstance(node, ast.Import) and any(a.name == "loadm" for a in node.names))
    ]
    namespace = {"__name__": "authors_rnn_script", "__file__": path}
    exec(compile(tree, path, "exec"), namespace)
    return namespace


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return numpy.frombuffer(data, dtype=numpy.uint8, offset=4 + 4 * dims).reshape(shape)


def mnist(directory):
    """As the script's `loadm.load_mnist(one_hot=True)`: float32 pixels / 255, one-hot."""
    def images(name):
        return idx(os.path.join(directory, name)).reshape(-1, 784).astype(numpy.float32) / 255.0

    def labels(name):
        raw = idx(os.path.join(directory, name))
        one_hot = numpy.zeros((raw.size, 10))
        one_hot[numpy.arange(raw.size), raw] = 1.0
        return one_hot

    return ((images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")),
            (images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")))


def classes(net):
    """Per matrix, the fractions (%) of very important (pi = 0 and xi = 0), unimportant
    (pi = 1) and variable connections."""
    out = {}
    for name in ("in", "rec", "out"):
        pi, xi = getattr(net, "pi_" + name), getattr(net, "xi_" + name)
        very = numpy.mean((pi == 0) & (xi == 0)) * 100
        unimportant = numpy.mean(pi == 1) * 100
        out[name] = {"very_important": very, "unimportant": unimportant,
                     "variable": 100 - very - unimportant}
    return out


def train(args):
    ns = load_definitions(args.script)
    (train_data, train_label), (test_data, test_label) = mnist(args.data)
    numpy.random.seed(args.seed)
    n_rec = 100
    net = ns["RNN"](28, n_rec, 10)
    learn_rate = numpy.full(9, 1e-3)
    # The globals the script's `train` and `test` read.
    ns.update(net1=net, n_rec=n_rec, learn_rate=learn_rate)
    for epoch in range(args.epochs):
        lr = ns["decay"](epoch + 1, 1e-8, learn_rate, 40)
        # The script's progress line goes to stderr, the results to stdout.
        with contextlib.redirect_stdout(sys.stderr):
            ce = ns["train"](net, 128, 200, train_data, train_label, lr, "Adam")
            accuracy = ns["test"](net, test_data, test_label, sampling=False)
            sampled = ns["test"](net, test_data, test_label, sampling=True)
        print(json.dumps({"seed": args.seed, "epoch": epoch + 1, "loss": ce,
                          "test_accuracy": accuracy * 100, "sampled_accuracy": sampled * 100,
                          "classes": classes(net)}), flush=True)


class Draws:
    """`np.random` with the dumped noise handed out in the order `run_bptt` draws it."""

    def __init__(self):
        self.queue = []

    def normal(self, loc=0.0, scale=1.0, size=None):
        if self.queue and loc == 0 and scale == 1 and tuple(size) == self.queue[0].shape:
            return self.queue.pop(0)
        raise AssertionError(f"an unexpected draw normal({loc}, {scale}, {size})")

    def __getattr__(self, name):
        return getattr(numpy.random, name)


def trajectory(args):
    ns = load_definitions(args.script)
    draws = Draws()

    class Shim:
        def __getattr__(self, name):
            return draws if name == "random" else getattr(numpy, name)

    d = {name[:-4]: numpy.load(os.path.join(args.dump, name))
         for name in os.listdir(args.dump) if name.endswith(".npy")}
    steps, rows = d["labels"].shape
    n_rec, n_in = d["initial_m_in"].shape
    net = ns["RNN"](n_in, n_rec, d["initial_m_out"].shape[0])
    for matrix in ("in", "rec", "out"):
        for name in ("m", "xi", "pi"):
            setattr(net, f"{name}_{matrix}", d[f"initial_{name}_{matrix}"].copy())
    # From here on the script's `np.random.normal` hands out the dumped noise.
    ns["np"] = Shim()
    worst = 0.0
    for step in range(steps):
        t_max = d["eps"].shape[1]
        x = d["x"][step].T.reshape(t_max, n_in, rows)
        y = numpy.zeros((net.n_out, rows))
        y[d["labels"][step].astype(int), numpy.arange(rows)] = 1.0
        draws.queue = [d["eps"][step].transpose(0, 2, 1).copy(), d["eps_out"][step].T.copy()]
        eta = numpy.full(9, float(d["lr"][step]))
        net.run_bptt(x, y, 0.1 * numpy.ones((n_rec, rows)), eta, optimizer="Adam")
        assert not draws.queue, "run_bptt drew fewer normals than dumped"
        distance = max(
            float(numpy.max(numpy.abs(getattr(net, f"{name}_{matrix}")
                                      - d[f"after_{name}_{matrix}"][step])))
            for matrix in ("in", "rec", "out") for name in ("m", "xi", "pi"))
        worst = max(worst, distance)
        print(f"step {step + 1}: the script's largest distance from the oracle {distance:.2e}")
    return 0 if worst <= args.tolerance else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    jobs = parser.add_subparsers(dest="job", required=True)
    t = jobs.add_parser("train", help="the script's protocol on the committed MNIST")
    t.add_argument("--script", required=True, help="the authors' BPTT-SAS-28by28.py")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=200)
    t.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../data/mnist"))
    c = jobs.add_parser("trajectory", help="the script's steps against tests/rnn.rs's oracle")
    c.add_argument("--script", required=True, help="the authors' BPTT-SAS-28by28.py")
    c.add_argument("--dump", required=True, help="a folder written with CREDIT_TRAJECTORY_DUMP")
    c.add_argument("--tolerance", type=float, default=1e-10)
    args = parser.parse_args()
    if args.job == "train":
        train(args)
        return 0
    return trajectory(args)


if __name__ == "__main__":
    sys.exit(main())
