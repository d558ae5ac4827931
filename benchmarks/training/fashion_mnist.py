"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from Debian's `dataset-fashion-mnist`.

The package holds the four gzip'd IDX files in `/usr/share/datasets/fashion-mnist/`:
60,000 training and 10,000 test images, 28×28 unsigned bytes, labels 0–9.
"""
import gzip
import os
import shutil
import struct
import subprocess

import numpy as np
import torch

DATA_DIR = "/usr/share/datasets/fashion-mnist"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
# Per-pixel mean and standard deviation of the 60,000 training images (pixel values in
# [0, 1]); computed by `normalisation()` and checked against these in `load`.
PIXEL_MEAN, PIXEL_STD = 0.28604, 0.35302


class DatasetError(Exception):
    pass


def ensure_installed(data_dir: str = DATA_DIR) -> None:
    """Installs the Debian package with apt-get when its files are missing (needs root or sudo)."""
    if all(os.path.exists(os.path.join(data_dir, f)) for pair in FILES.values() for f in pair[:2]):
        return
    if data_dir != DATA_DIR:
        raise DatasetError(f"{data_dir}: Fashion-MNIST files missing ({', '.join(f for p in FILES.values() for f in p[:2])})")
    if shutil.which("apt-get") is None:
        raise DatasetError(f"{data_dir} is missing and apt-get is not available to install {DEBIAN_PACKAGE}")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print(f"installing {DEBIAN_PACKAGE} with apt-get", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    result = subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", DEBIAN_PACKAGE], env=env)
    if result.returncode != 0:
        subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", DEBIAN_PACKAGE], env=env, check=True)


def _read_idx(path: str, magic: int, count: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """Reads one gzip'd IDX file (big-endian header: magic, then one uint32 per axis)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    axes = len(item_shape) + 1
    header = 4 + 4 * axes
    if len(data) < header:
        raise DatasetError(f"{path}: {len(data)} bytes, shorter than the IDX header ({header} bytes)")
    got_magic, *dims = struct.unpack(f">{1 + axes}I", data[:header])
    if got_magic != magic:
        raise DatasetError(f"{path}: IDX magic {got_magic:#x}, expected {magic:#x}")
    expected = [count, *item_shape]
    if dims != expected:
        raise DatasetError(f"{path}: IDX dimensions {dims}, expected {expected}")
    size = int(np.prod(expected))
    if len(data) != header + size:
        raise DatasetError(f"{path}: {len(data) - header} payload bytes, expected {size}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(expected)


def load(split: str, data_dir: str = DATA_DIR) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns `(images, labels)`: images `(N, 1, 28, 28)` float32, normalised with the
    training set's pixel mean and standard deviation; labels `(N,)` int64 in 0…9."""
    images_file, labels_file, count = FILES[split]
    images = _read_idx(os.path.join(data_dir, images_file), 0x803, count, (28, 28))
    labels = _read_idx(os.path.join(data_dir, labels_file), 0x801, count, ())
    if labels.max() > 9:
        raise DatasetError(f"{os.path.join(data_dir, labels_file)}: label {labels.max()} outside 0…9")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - PIXEL_MEAN) / PIXEL_STD, torch.from_numpy(labels.astype(np.int64))


def per_class_subset(labels: torch.Tensor, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of `per_class` randomly chosen examples of each of the 10 classes (sorted)."""
    chosen = []
    for c in range(10):
        members = (labels == c).nonzero().flatten()
        if len(members) < per_class:
            raise DatasetError(f"class {c} has {len(members)} training images, fewer than {per_class}")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(chosen).sort().values
