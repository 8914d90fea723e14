"""Checks the float64 oracle of tests/trajectory.rs against the authors' own script.

tests/trajectory.rs re-implements the update rules of the authors' MNIST scripts
(Chan-Li/SAS-model, `Training for MNIST/DNN-SAS-MNIST.py` at c74f63a for 2020, at HEAD with
`utils/` for 2022) and compares credit's training steps with them. This script runs the
authors' script itself on the same inputs and compares its parameters with the oracle's after
every step (2022) or after every epoch and the first step of the next (2020, whose Adam is
started afresh inside each epoch's call):

    CREDIT_TRAJECTORY_DUMP=/tmp/traj CREDIT_TRAJECTORY_STEPS=100 \\
        cargo test --release -p credit-tests --test trajectory -- --test-threads 1
    python3 bench/reference/authors_trajectory.py --rules 2020 \\
        --script PATH/DNN-SAS-MNIST.py --dump /tmp/traj/2020-slip --steps 41
    python3 bench/reference/authors_trajectory.py --rules 2022 \\
        --script PATH/DNN-SAS-MNIST.py --dump /tmp/traj/2022

PATH is a checkout of the authors' repository at the commit (`git show
c74f63a:"Training for MNIST/DNN-SAS-MNIST.py"`; for 2022 with its `utils/` beside it). Their
code is loaded, not copied; nothing of it is in this repository. The script reads its data at
import: a stand-in `load` module gives it empty arrays (and stand-ins of matplotlib, which it
imports but does not use here), and the batches, the initial
parameters and the noise `eps` come from the dump (the oracle's inputs, which are credit's).
The 2020 oracle to compare with is the one with the script's parenthesis (`2020-slip`).

Two shims keep their maths and make it run: `np.random.normal(0, 1, shape)` in the forward
pass returns the dumped `eps`, and `np.ones_like` of the 2020 script's list of arrays of
different shapes (an object array in the numpy of 2020, an error today) returns the list of
ones. Needs numpy. Prints the largest distance after each compared step; exits 1 if one is
above --tolerance (1e-10: right for the first 40-odd steps of 2020 and 100 of 2022; the 2020
restarts amplify rounding later on, see tests/trajectory.rs). For 2020 the script is
compared at the end of each epoch's call and where the compared steps end (`--steps 41`: after
steps 20, 40 and 41).
"""

import argparse
import os
import sys
import types

import numpy


def load_dump(directory):
    meta = dict(
        line.split("=", 1) for line in open(os.path.join(directory, "meta.txt")).read().splitlines()
    )
    sizes = [int(s) for s in meta["sizes"].strip("[]").split(",")]
    layers = len(sizes) - 1

    def npy(name):
        return numpy.load(os.path.join(directory, name))

    names = ["m", "xi", "pi"]
    return {
        "sizes": sizes,
        "per_epoch": int(meta["steps_per_epoch"]),
        "initial": [{n: npy(f"initial_{n}_{l}.npy") for n in names} for l in range(layers)],
        "after": [{n: npy(f"after_{n}_{l}.npy") for n in names} for l in range(layers)],
        "eps": [npy(f"eps_{l}.npy") for l in range(layers)],
        "x": npy("x.npy"),
        "labels": npy("labels.npy").astype(int),
        "lr": npy("lr.npy"),
    }


class Ragged:
    """`np.ones_like` of a list of arrays: multiplies and adds element by element."""

    def __init__(self, arrays):
        self.arrays = arrays

    def __mul__(self, k):
        return Ragged([a * k for a in self.arrays])

    __rmul__ = __mul__

    def __radd__(self, other):
        return [o + a for o, a in zip(other, self.arrays)]


class NoiseQueue:
    """The dumped eps, handed out in the order the forward pass draws them."""

    def __init__(self):
        self.queue = []

    def normal(self, loc=0.0, scale=1.0, size=None):
        if (loc == 0 and scale == 1 and self.queue and size is not None
                and self.queue[0].shape == numpy.empty(size).shape):
            return self.queue.pop(0)
        return numpy.random.normal(loc, scale, size)

    def __getattr__(self, name):
        return getattr(numpy.random, name)


def numpy_shim(noise):
    shim = types.ModuleType("numpy_shim")
    shim.__dict__.update({k: getattr(numpy, k) for k in dir(numpy) if not k.startswith("__")})
    shim.random = noise

    def ones_like(a, *args, **kwargs):
        if isinstance(a, list):
            return Ragged([numpy.ones_like(x) for x in a])
        return numpy.ones_like(a, *args, **kwargs)

    shim.ones_like = ones_like
    return shim


def load_script(path, noise):
    stand_in = types.ModuleType("load")
    empty = numpy.zeros((10000, 784), dtype=numpy.float32)
    one_hot = numpy.zeros((10000, 10))
    splits = numpy.empty((2, 2), dtype=object)
    splits[0, 0], splits[0, 1], splits[1, 0], splits[1, 1] = empty, one_hot, empty, one_hot
    stand_in.load_mnist = lambda **_: splits
    sys.modules["load"] = stand_in
    # Their plotting imports, unused on this path.
    plotting = types.ModuleType("matplotlib.pyplot")
    plotting.plot = plotting.savefig = plotting.show = lambda *a, **k: None
    matplotlib = types.ModuleType("matplotlib")
    matplotlib.pyplot = plotting
    sys.modules.setdefault("matplotlib", matplotlib)
    sys.modules.setdefault("matplotlib.pyplot", plotting)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    namespace = {"__name__": "authors_script", "__file__": path}
    source = open(path).read()
    # Their `import numpy as np` is replaced after the module ran, by name.
    exec(compile(source, path, "exec"), namespace)
    namespace["np"] = numpy_shim(noise)
    return namespace


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rules", choices=["2020", "2022"], required=True)
    parser.add_argument("--script", required=True, help="the authors' DNN-SAS-MNIST.py")
    parser.add_argument("--dump", required=True, help="a folder written with CREDIT_TRAJECTORY_DUMP")
    parser.add_argument("--steps", type=int, default=0,
                        help="compare the first N dumped steps only (2020: N = 21 ends on the "
                             "first step of epoch 2)")
    parser.add_argument("--tolerance", type=float, default=1e-10)
    args = parser.parse_args()

    dump = load_dump(args.dump)
    noise = NoiseQueue()
    ns = load_script(args.script, noise)
    sizes, steps = dump["sizes"], len(dump["lr"])
    if args.steps:
        steps = min(steps, args.steps)
    net = ns["NeuralNetwork"](sizes)
    net.messes = [d["m"].copy() for d in dump["initial"]]
    net.sigmas = [d["xi"].copy() for d in dump["initial"]]
    net.pis = [d["pi"].copy() for d in dump["initial"]]
    if args.rules == "2022":
        adam = ns["Adam"]
        net.Adam_sigmas, net.Adam_pis, net.Adam_messes = (
            adam(net.sigmas), adam(net.pis), adam(net.messes))
        net.update_moment()

    def batch(step):
        x = dump["x"][step].T.copy()
        y = numpy.zeros((sizes[-1], x.shape[1]))
        y[dump["labels"][step], numpy.arange(x.shape[1])] = 1.0
        return x, y

    def queue_noise(step):
        noise.queue = [dump["eps"][l][step].T.copy() for l in range(len(sizes) - 1)]

    def distance(step):
        worst = 0.0
        for l, d in enumerate(dump["after"]):
            for theirs, name in ((net.messes, "m"), (net.sigmas, "xi"), (net.pis, "pi")):
                worst = max(worst, float(numpy.max(numpy.abs(theirs[l] - d[name][step]))))
        return worst

    relu, drelu = ns["relu"], ns["drelu"]
    results = []
    if args.rules == "2022":
        for step in range(steps):
            x, y = batch(step)
            ns["mini_batch_generate"] = lambda *_: (numpy.array([x]), numpy.array([y]))
            queue_noise(step)
            net.adam_update(float(dump["lr"][step]), x.shape[1], relu, drelu, x, y)
            results.append((step + 1, distance(step)))
    else:
        # One call of adam_mini per epoch (it restarts Adam), cut where the dump ends.
        per_epoch = dump["per_epoch"]
        for first in range(0, steps, per_epoch):
            chunk = range(first, min(first + per_epoch, steps))
            batches = [batch(s) for s in chunk]
            ns["mini_batch_generate"] = lambda *_: (
                numpy.array([b[0] for b in batches]), numpy.array([b[1] for b in batches]))
            draws = [[dump["eps"][l][s].T.copy() for l in range(len(sizes) - 1)] for s in chunk]
            noise.queue = [e for d in draws for e in d]
            net.adam_mini(float(dump["lr"][first]), batches[0][0].shape[1], relu, drelu)
            print()
            results.append((chunk[-1] + 1, distance(chunk[-1])))
    worst = max(d for _, d in results)
    for step, d in results:
        print(f"after step {step}: largest |authors' script - oracle| = {d:.2e}")
    print(f"largest over {len(results)} compared steps: {worst:.2e} (tolerance {args.tolerance:.0e})")
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
