"""Writes dense random images in CIFAR-10's binary format, for timing the CIFAR-10 shape
without downloading CIFAR-10.

Each record is one label byte (0..9) and 3072 pixel bytes (uniform 0..255, so no pixel is
zero more often than 1 in 256, unlike MNIST's 81%). The training records are split evenly
over data_batch_1.bin .. data_batch_5.bin (10,000 each by default) and the test records go
to test_batch.bin, as in the real data set. The same seed writes the same bytes.

Usage:
    python bench/make_cifar_like.py FOLDER [--train 50000] [--test 10000] [--seed 0]
credit reads the folder with --set data.format=cifar10 --set data.dir=FOLDER.
"""

import argparse
import os

import numpy as np

RECORD = 1 + 3 * 32 * 32
TRAIN_FILES = 5


def records(rng, count):
    """`count` records as one byte string: a random label, then random pixels."""
    data = rng.integers(0, 256, size=(count, RECORD), dtype=np.uint8)
    data[:, 0] = rng.integers(0, 10, size=count, dtype=np.uint8)
    return data.tobytes()


def write(folder, train=50000, test=10000, seed=0):
    """Writes the six files into `folder` (created if missing)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_file = [len(part) for part in np.array_split(np.arange(train), TRAIN_FILES)]
    for i, count in enumerate(per_file, start=1):
        with open(os.path.join(folder, f"data_batch_{i}.bin"), "wb") as f:
            f.write(records(rng, count))
    with open(os.path.join(folder, "test_batch.bin"), "wb") as f:
        f.write(records(rng, test))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--train", type=int, default=50000,
                        help="training records, split over data_batch_1..5.bin")
    parser.add_argument("--test", type=int, default=10000, help="records in test_batch.bin")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.train < TRAIN_FILES or args.test < 1:
        parser.error(f"need at least {TRAIN_FILES} training and 1 test record")
    write(args.folder, args.train, args.test, args.seed)


if __name__ == "__main__":
    main()
