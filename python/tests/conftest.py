"""Shared pieces of the magicinit tests: the repository's sample photos as input tensors,
small CNNs, and the mi-coordinator to run."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import magicinit

REPOSITORY = Path(__file__).resolve().parents[2]
PHOTOS = REPOSITORY / "Sources" / "MagicInitSamples" / "photos"


def photo_tensor(size: int, count: int = 32, grey: bool = False) -> torch.Tensor:
    """The first `count` sample photos, resized to `size`², as a torchvision-style input:
    RGB (or greyscale) scaled to [0, 1], minus the per-channel mean, over the std, of these
    photos. `(count, C, size, size)` float32."""
    paths = sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
    assert len(paths) == count, f"{PHOTOS} holds {len(paths)} photos, need {count}"
    images = []
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("L" if grey else "RGB").resize((size, size), Image.BILINEAR)
            array = np.asarray(image, dtype=np.float32) / 255
        images.append(array[None] if grey else array.transpose(2, 0, 1))
    x = torch.from_numpy(np.stack(images))
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True)
    return ((x - mean) / std).contiguous()


class PlainCNN(torch.nn.Module):
    """Conv-ReLU-pool ×2, then two linear layers: the plain CNN Algorithm 1 is exact on."""

    def __init__(self, channels: int = 3, size: int = 32, classes: int = 10):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(channels, 12, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(12, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
        )
        self.classifier = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(16 * (size // 4) ** 2, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5),
            torch.nn.Linear(32, classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class BatchNormCNN(torch.nn.Module):
    """Conv-BatchNorm-ReLU blocks and a linear head: its state dict carries BatchNorm's
    running statistics and the integer `num_batches_tracked` buffers. It flattens with
    `view(x.size(0), -1)` (shape arithmetic in the traced graph)."""

    def __init__(self, channels: int = 1, size: int = 28):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(channels, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(16)
        self.fc = torch.nn.Linear(16 * (size // 4) ** 2, 10)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(x.view(x.size(0), -1))


class LRNCNN(torch.nn.Module):
    """CaffeNet's pattern at 28×28: Conv-ReLU-LRN-MaxPool twice, then two linear layers."""

    def __init__(self, channels: int = 1):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(channels, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0),
            torch.nn.MaxPool2d(3, 2),
            torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.LocalResponseNorm(3, alpha=0.1, beta=0.75, k=1.0),
            torch.nn.MaxPool2d(2),
        )
        self.classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 6 * 6, 24), torch.nn.ReLU(),
                                              torch.nn.Linear(24, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


@pytest.fixture(scope="session")
def coordinator() -> str:
    """The mi-coordinator the package finds (scripts/test points MAGICINIT_COORDINATOR at
    the debug build next to the Swift tests)."""
    return magicinit.find_coordinator()
