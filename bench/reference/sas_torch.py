"""Reference: the spike-and-slab mean-field network of credit in PyTorch (CPU, float32).

Same model, init, data and training step as `configs/mnist.toml`: sizes 784-100-100-10,
m ~ sqrt(2/784) N(0,1), xi ~ U(0, 0.01), pi = 0; AdamW(lr 0.1, betas 0.9/0.999, eps 1e-8,
weight decay 1e-4) on m, xi and pi, started afresh every epoch, its learning rate halved
every 20 epochs; pi clamped into [0, 1] and xi to >= 0 after every step; batch 500 over the
first 10,000 MNIST training images, reshuffled every epoch.

Prints one JSON line: seconds of each timed epoch, their median and images per second.
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
    parser.add_argument("--data", default="data/mnist")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs (after one warm-up)")
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images = load_idx(f"{args.data}/train-images-idx3-ubyte.gz", 16).reshape(-1, 784)
    labels = load_idx(f"{args.data}/train-labels-idx1-ubyte.gz", 8)
    x = torch.from_numpy(images[: args.train_size].astype(np.float32) / 255.0)
    y = torch.from_numpy(labels[: args.train_size].astype(np.int64))

    sizes = [784, 100, 100, 10]
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        m = (torch.randn(n_out, n_in) * (2.0 / 784) ** 0.5).requires_grad_()
        xi = (torch.rand(n_out, n_in) * 0.01).requires_grad_()
        pi = torch.zeros(n_out, n_in).requires_grad_()
        params.append((m, xi, pi))
    def adamw(epoch_index):
        lr = 0.1 * 0.5 ** (epoch_index // 20)
        tensors = [t for layer in params for t in layer]
        return torch.optim.AdamW(tensors, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4)

    def forward(a):
        for i, (m, xi, pi) in enumerate(params):
            keep = 1.0 - pi
            mu = keep * m
            var = keep * (xi + pi * m * m)
            g = a @ mu.t()
            delta = (a * a) @ var.t()
            h = (g + delta.clamp_min(1e-12).sqrt() * torch.randn_like(g)) / a.shape[1] ** 0.5
            a = torch.relu(h) if i < len(params) - 1 else h
        return a

    def epoch(index):
        order = torch.randperm(args.train_size)
        start = time.perf_counter()
        optim = adamw(index)
        for b in range(0, args.train_size, args.batch):
            idx = order[b : b + args.batch]
            loss = torch.nn.functional.cross_entropy(forward(x[idx]), y[idx])
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            with torch.no_grad():
                for _, xi, pi in params:
                    xi.clamp_(min=0.0)
                    pi.clamp_(0.0, 1.0)
        return time.perf_counter() - start

    epoch(0)
    seconds = [epoch(i + 1) for i in range(args.epochs)]
    median = statistics.median(seconds)
    print(
        json.dumps(
            {
                "tool": "pytorch",
                "torch": torch.__version__,
                "threads": args.threads,
                "epoch_seconds": seconds,
                "epoch_seconds_median": median,
                "train_images_per_second": args.train_size / median,
            }
        )
    )


if __name__ == "__main__":
    main()
