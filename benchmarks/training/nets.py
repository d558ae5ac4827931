"""The two benchmark architectures, sized for Fashion-MNIST's 28×28 greyscale images.

Neither has batch normalisation, so nothing but the initialisation sets the scale of each
layer (Krähenbühl et al. 2016, §4: CaffeNet and VGG trained from scratch). Layout NCHW;
input `(N, 1, 28, 28)`, output logits `(N, 10)`.

Both export (through `magicinit`'s exporter, which writes `nn.LocalResponseNorm` as one ONNX
LRN node) to operators MagicInit's importer reads: Conv, Relu, MaxPool with ceil_mode, LRN,
Flatten, Gemm (dropout is the identity in the exported inference graph).
"""
import torch.nn as nn


def vgg_plain(width: int = 8) -> nn.Sequential:
    """A plain VGG-style network (Simonyan & Zisserman 2015) without batch normalisation:
    ten 3×3 convolutions, each followed by ReLU, in four stages of widths
    `w, 2w, 4w, 4w` (2, 3, 3 and 2 convolutions) at 28², 14², 7² and 4², with 2×2 max
    pooling between the stages (ceil rounding 7 -> 4), then two fully connected layers
    (`16·4w -> 16w -> 10`). Deep and unnormalised, it is the case where the initial
    scale of each layer matters most."""
    layers: list[nn.Module] = []
    channels = 1
    stages = [(width, 2), (2 * width, 3), (4 * width, 3), (4 * width, 2)]
    for index, (out, count) in enumerate(stages):
        if index > 0:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        for _ in range(count):
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(inplace=True)]
            channels = out
    layers += [nn.Flatten(), nn.Linear(channels * 4 * 4, 16 * width), nn.ReLU(inplace=True),
               nn.Linear(16 * width, 10)]
    return nn.Sequential(*layers)


def caffenet_small(width: int = 12) -> nn.Sequential:
    """CaffeNet (Jia et al. 2014: AlexNet with pooling before LRN) scaled to 28×28: five
    convolutions (`5×5 w`, `5×5 2w`, `3×3 3w`, `3×3 3w`, `3×3 2w`; no groups, as in
    Doersch et al.'s variant the paper also initialises), ReLU after each, 3×3/2 max pooling
    with ceil rounding after conv1, conv2 and conv5 (28 -> 14 -> 7 -> 3), LRN (size 5,
    alpha 1e-4, beta 0.75, k 1) after the first two poolings, then fc6, fc7 (`16w` units,
    ReLU, dropout 0.5) and fc8 (10 classes)."""
    w = width
    return nn.Sequential(
        nn.Conv2d(1, w, 5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, ceil_mode=True), nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0),
        nn.Conv2d(w, 2 * w, 5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, ceil_mode=True), nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0),
        nn.Conv2d(2 * w, 3 * w, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(3 * w, 3 * w, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(3 * w, 2 * w, 3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(2 * w * 3 * 3, 16 * w), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(16 * w, 16 * w), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(16 * w, 10),
    )


ARCHITECTURES = {"vgg-plain": vgg_plain, "caffenet-small": caffenet_small}
