"""Reference: credit's spike-and-slab recurrent network in PyTorch eager (float32, CPU), the
model and training step of `configs/smnist-rnn.toml` (the authors' BPTT-SAS-28by28.py).

Each MNIST image is a sequence of 28 rows of 28 pixels; 100 recurrent units, 10 classes.
Per step: u = G + sqrt(Delta) eps over [r, x] with the matrices [m_rec | m_in] (no 1/sqrt(N)),
h = h + (u - h) / 10, r = relu(h), h_0 = 0.1; the readout a spike-and-slab layer on the last r
with its own noise; softmax cross-entropy; backprop through time by autograd. Init
m_in, m_out ~ sqrt(28/100) N(0, 1), m_rec = I, xi ~ 0.1 U(0, 1), pi = 0. AdamW (lr 1e-3,
decay 1e-4 on m and xi, none on pi), each gradient clipped to spectral norm 10, pi clamped
into [0, 1] and xi to >= 0 after every step; 200 batches of 128 per epoch from the
reshuffled 60,000 training images. `--pixels` reads one pixel per step (784 steps) with
plain input weights, as configs/smnist-rnn-pixel.toml.

Prints one JSON line: seconds of each timed epoch (after one untimed warm-up), their median,
the training images per epoch and per second, and the loss of the last batch.
"""

import argparse
import gzip
import json
import os
import statistics
import time

import numpy as np
import torch


def load_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/mnist", help="folder of the MNIST idx files")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up)")
    parser.add_argument("--batches", type=int, default=200, help="batches per epoch")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--pixels", action="store_true", help="one pixel per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    images = load_idx(f"{args.data}/train-images-idx3-ubyte.gz", 16).reshape(-1, 784)
    labels = load_idx(f"{args.data}/train-labels-idx1-ubyte.gz", 8)
    x_all = torch.from_numpy(images.astype(np.float32) / 255.0)
    y_all = torch.from_numpy(labels.astype(np.int64))
    d = 1 if args.pixels else 28
    steps = 784 // d
    n, classes = args.units, 10
    std = (d / n) ** 0.5
    xi_max = 0.01 if args.pixels else 0.1

    def matrix(rows, cols, identity=False, plain=False):
        m = torch.eye(rows) if identity else std * torch.randn(rows, cols)
        xi = torch.zeros(rows, cols) if plain else xi_max * torch.rand(rows, cols)
        return [m.requires_grad_(), xi.requires_grad_(not plain),
                torch.zeros(rows, cols).requires_grad_(not plain)]

    inp, rec, out = matrix(n, d, plain=args.pixels), matrix(n, n, identity=True), matrix(classes, n)
    params = [p for p in inp + rec + out if p.requires_grad]
    ms, xis, pis = [inp[0], rec[0], out[0]], [inp[1], rec[1], out[1]], [inp[2], rec[2], out[2]]
    decayed = ms + [p for p in xis if p.requires_grad]
    undecayed = [p for p in pis if p.requires_grad]
    optim = torch.optim.AdamW([{"params": decayed, "weight_decay": 1e-4},
                               {"params": undecayed, "weight_decay": 0.0}],
                              lr=1e-3, betas=(0.9, 0.999), eps=1e-8)

    def moments(m, xi, pi):
        keep = 1 - pi
        return keep * m, keep * (xi + pi * m * m)

    def noisy(a, mean, var, eps):
        delta = (a * a) @ var.t()
        # sqrt(Delta) with no gradient where Delta = 0 (the script's variance_fix).
        root = torch.where(delta > 0, delta.clamp_min(1e-38).sqrt(), torch.zeros_like(delta))
        return a @ mean.t() + root * eps

    def step(xb, yb):
        b = xb.shape[0]
        mean, var = moments(torch.cat([rec[0], inp[0]], 1), torch.cat([rec[1], inp[1]], 1),
                            torch.cat([rec[2], inp[2]], 1))
        h = torch.full((b, n), 0.1)
        r = torch.relu(h)
        seq = xb.view(b, steps, d)
        for t in range(steps):
            u = noisy(torch.cat([r, seq[:, t]], 1), mean, var, torch.randn(b, n))
            h = h + (u - h) / 10.0
            r = torch.relu(h)
        mean_out, var_out = moments(*out)
        logits = noisy(r, mean_out, var_out, torch.randn(b, classes))
        loss = torch.nn.functional.cross_entropy(logits, yb)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for p in params:
                norm = torch.linalg.matrix_norm(p.grad, ord=2)
                if norm >= 10.0:
                    p.grad.mul_(10.0 / norm)
        optim.step()
        with torch.no_grad():
            for p in pis:
                p.clamp_(0.0, 1.0)
            for p in xis:
                p.clamp_(min=0.0)
        return loss

    def epoch():
        order = torch.randperm(x_all.shape[0])
        loss = None
        for k in range(args.batches):
            idx = order[k * args.batch:(k + 1) * args.batch]
            loss = step(x_all[idx], y_all[idx])
        return loss

    epoch()  # warm-up, untimed
    seconds = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        loss = epoch()
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    images = args.batches * args.batch
    print(json.dumps({
        "epoch_seconds": seconds,
        "epoch_seconds_median": median,
        "train_images": images,
        "train_images_per_second": images / median,
        "last_loss": float(loss),
    }))


if __name__ == "__main__":
    main()
