"""Reference: the spike-and-slab mean-field network of credit in PyTorch (float32; CPU by
default, CUDA with --device cuda).

Same model, init, data and training step as `configs/mnist.toml`: sizes 784-100-100-10,
m ~ sqrt(2/784) N(0,1), xi ~ U(0, 0.01), pi = 0; AdamW(lr 0.1, betas 0.9/0.999, eps 1e-8,
weight decay 1e-4 on m and xi, none on pi), started afresh every epoch, its learning rate
halved every 20 epochs; pi clamped into [0, 1] and xi to >= 0 after every step; batch 500
over the first 10,000 MNIST training images, reshuffled every epoch.

The sizes, batch, number of training images and the data (MNIST idx files, or a CIFAR-10
binary folder such as bench/make_cifar_like.py writes) can be changed to match
`credit bench --set model.sizes=... --set train.batch_size=... --set data.train_size=...
--set data.format=... --set data.dir=...`; the rest of configs/mnist.toml stays.

--device cuda runs it on the GPU: the data, the parameters (drawn on the CPU with the same
seed, then moved) and the noise live there, every epoch's order is drawn there, and each timed
epoch is bracketed by torch.cuda.synchronize(). --compile wraps the whole training step
(forward, loss, backward, AdamW step, clamps) in torch.compile; then one AdamW is kept and its
state zeroed in place at the start of every epoch, which is the same as a fresh one (a fresh
optimizer object every epoch would make torch.compile recompile the step every epoch). The
warm-up epoch, untimed, holds the compilation.

Prints one JSON line: seconds of each timed epoch, their median and images per second, the
device and whether the step was compiled, and the loss of the last batch (read after timing).
"""

import argparse
import glob
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


def load_train(data_format, folder):
    """Training images as `[n, features]` bytes and their labels, as credit reads them."""
    if data_format == "idx":
        images = load_idx(f"{folder}/train-images-idx3-ubyte.gz", 16).reshape(-1, 784)
        return images, load_idx(f"{folder}/train-labels-idx1-ubyte.gz", 8)
    files = sorted(glob.glob(os.path.join(folder, "data_batch_*.bin")))
    if not files:
        raise SystemExit(f"no data_batch_*.bin in {folder}")
    records = np.concatenate([np.fromfile(f, dtype=np.uint8) for f in files]).reshape(-1, 3073)
    return records[:, 1:], records[:, 0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/mnist", help="folder of the data files")
    parser.add_argument("--format", choices=["idx", "cifar10"], default="idx")
    parser.add_argument("--sizes", default="784,100,100,10",
                        help="layer widths, input first, comma-separated")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs (after one warm-up)")
    parser.add_argument("--train-size", type=int, default=10000,
                        help="the first N training images (0 = all)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the training step (forward, backward, AdamW, clamps)")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend (inductor; eager or aot_eager to test the path)")
    parser.add_argument("--compile-mode", default=None,
                        help="torch.compile mode, e.g. reduce-overhead (CUDA graphs), max-autotune")
    args = parser.parse_args()

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False")
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images, labels = load_train(args.format, args.data)
    train_size = args.train_size or len(labels)
    x = torch.from_numpy(images[:train_size].astype(np.float32) / 255.0).to(device)
    y = torch.from_numpy(labels[:train_size].astype(np.int64)).to(device)

    sizes = [int(s) for s in args.sizes.split(",")]
    if sizes[0] != x.shape[1] or len(sizes) < 2:
        raise SystemExit(f"--sizes {args.sizes} does not start with the {x.shape[1]} input features")
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        # Drawn on the CPU whatever the device, so that every device starts from the same values.
        m = (torch.randn(n_out, n_in) * (2.0 / 784) ** 0.5).to(device).requires_grad_()
        xi = (torch.rand(n_out, n_in) * 0.01).to(device).requires_grad_()
        pi = torch.zeros(n_out, n_in).to(device).requires_grad_()
        params.append((m, xi, pi))

    def learning_rate(epoch_index):
        return 0.1 * 0.5 ** (epoch_index // 20)

    def adamw(epoch_index):
        lr = learning_rate(epoch_index)
        decayed = [t for m, xi, _ in params for t in (m, xi)]
        groups = [{"params": decayed}, {"params": [pi for _, _, pi in params], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4)

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

    def step(optim, xb, yb):
        loss = torch.nn.functional.cross_entropy(forward(xb), yb)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        with torch.no_grad():
            for _, xi, pi in params:
                xi.clamp_(min=0.0)
                pi.clamp_(0.0, 1.0)
        return loss.detach()

    if args.compile:
        compiled_step = torch.compile(step, backend=args.compile_backend, mode=args.compile_mode)
        kept = adamw(0)

        def optimizer_for(index):
            # Adam's moments and step count restarted in place: the same as a fresh AdamW
            # (whose state is created as zeros at its first step), without a new object for
            # torch.compile to recompile against.
            for state in kept.state.values():
                for value in state.values():
                    if torch.is_tensor(value):
                        value.zero_()
            for group in kept.param_groups:
                group["lr"] = learning_rate(index)
            return kept
    else:
        compiled_step = step
        optimizer_for = adamw

    last_loss = [None]

    def epoch(index):
        order = torch.randperm(train_size, device=device) if cuda else torch.randperm(train_size)
        sync()
        start = time.perf_counter()
        optim = optimizer_for(index)
        for b in range(0, train_size, args.batch):
            idx = order[b : b + args.batch]
            last_loss[0] = compiled_step(optim, x[idx], y[idx])
        sync()
        return time.perf_counter() - start

    warmup = epoch(0)
    seconds = [epoch(i + 1) for i in range(args.epochs)]
    median = statistics.median(seconds)
    print(
        json.dumps(
            {
                "tool": "pytorch",
                "torch": torch.__version__,
                "device": args.device,
                "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
                "compile": args.compile,
                "compile_backend": args.compile_backend if args.compile else None,
                "compile_mode": args.compile_mode if args.compile else None,
                "threads": args.threads,
                "sizes": sizes,
                "batch": args.batch,
                "train_images": train_size,
                "warmup_seconds": warmup,
                "epoch_seconds": seconds,
                "epoch_seconds_median": median,
                "train_images_per_second": train_size / median,
                "last_loss": float(last_loss[0]),
            }
        )
    )


if __name__ == "__main__":
    main()
