"""The initialisations the benchmark compares. Each is `apply(model, images, seed)`: sets
the model's weights in place from `images` `(1000, 1, 28, 28)` (training images only) and
the run's seed; returns a dict of extra facts to record (may be empty)."""
import contextlib
import io
import os
import sys

import torch
import torch.nn as nn

AFFINE = (nn.Conv2d, nn.Linear)


def pytorch_default(model, images, seed):
    """PyTorch's own: weights U(±1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)),
    biases U(±1/sqrt(fan_in)); already drawn when the model was built."""
    return {}


def he_normal(model, images, seed):
    """He et al. 2015 ("MSRA"): weights N(0, 2/fan_in) for every convolution and linear
    layer (`kaiming_normal_`, fan_in, ReLU gain), biases 0."""
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, AFFINE):
            fan_in = m.weight[0].numel()
            with torch.no_grad():
                m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
                m.bias.zero_()
    return {}


def lsuv(model, images, seed):
    """LSUV (Mishkin & Matas 2016), PyPI `lsuv`: orthonormal weights, then layer by layer
    each output scaled to unit variance on one batch of `images`."""
    import lsuv as lsuv_package
    torch.manual_seed(seed)  # the orthogonal draws use the global generator
    with contextlib.redirect_stdout(io.StringIO()):
        lsuv_package.lsuv_with_singlebatch(model, images, verbose=False)
    return {}


def import_magicinit():
    """The `magicinit` package: installed (`pip install ./python`), else the repository's
    `python/` folder."""
    try:
        import magicinit
    except ImportError:
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, "..", "..", "python"))
        import magicinit
    return magicinit


def magicinit_offered_inits():
    """The §3.3 starting weights `mi-coordinator --init` offers (["gaussian"] before it
    exists)."""
    magicinit = import_magicinit()
    offered = magicinit.coordinator_options(magicinit.find_coordinator())
    values = (offered.get("init") or {}).get("values")
    return list(values) if values else ["gaussian"]


def magicinit_method(init: str, rate_measure: str, threads: int):
    """MagicInit, Algorithms 1 + 2 (Krähenbühl et al. 2016, §3.1–3.2) from the §3.3
    starting weights `init`, with change rates measured by `rate_measure` (eq4 or
    weight-gradient)."""
    def apply(model, images, seed):
        magicinit = import_magicinit()
        report = magicinit.initialize(model, images, mode="both", init=init, rate_measure=rate_measure,
                                      seed=seed, threads=threads)
        return {"magicinit_report": summarise_report(report)}
    apply.__doc__ = magicinit_method.__doc__.replace("`init`", init).replace("`rate_measure`", rate_measure)
    return apply


def summarise_report(report: dict) -> dict:
    """The report's per-layer change rates before and after (the paper's Figure 1a), when
    it has them."""
    summary = {}
    for key in ("figure1Before", "figure1After"):
        rows = report.get(key)
        if isinstance(rows, list):
            summary[key] = rows
    return summary


def methods(threads: int, magicinit: bool = True) -> dict:
    """Name -> apply function, in the order they are run and plotted."""
    chosen = {"pytorch-default": pytorch_default, "he-normal": he_normal, "lsuv": lsuv}
    if magicinit:
        chosen["magicinit-eq4"] = magicinit_method("gaussian", "eq4", threads)
        chosen["magicinit-weight-gradient"] = magicinit_method("gaussian", "weight-gradient", threads)
        for init in magicinit_offered_inits():
            if init != "gaussian":
                chosen[f"magicinit-{init}"] = magicinit_method(init, "weight-gradient", threads)
    return chosen
