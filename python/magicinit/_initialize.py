"""`initialize`: a `torch.nn.Module` through `mi-coordinator` and back."""
from __future__ import annotations

import copy
import inspect
import json
import os
import tempfile
import warnings
from collections.abc import Iterable

import numpy as np
import onnx
import torch
from safetensors.torch import load_file, save_file

from ._coordinator import MagicInitError, coordinator_options, find_coordinator, log, run_coordinator

#: Options `initialize` sets itself; they cannot be passed through `**options`.
MANAGED_OPTIONS = {
    "model", "inputs", "images", "max-images", "output", "report", "local", "workers", "bind", "allow-remote",
    "network", "weights", "dump-inputs", "preprocessing", "resize", "mode", "init", "help",
}

#: Options of mi-coordinator that cannot work on the tensors `initialize` passes, and why.
UNUSABLE_OPTIONS = {
    "verify-images": "mi-coordinator checks held-out image files preprocessed as --images are, "
                     "and initialize passes tensors (--inputs); check held-out data in PyTorch instead",
}


def collect_inputs(inputs) -> torch.Tensor:
    """`inputs` as one float32 CPU tensor `(N, C, H, W)`.

    Args:
        inputs: a tensor or array `(N, C, H, W)`, or an iterable of them (batches), or of
            tuples/lists whose first element is one (a `DataLoader` yielding `(x, y)`).

    Raises:
        MagicInitError: a batch is not 4-D, batches differ in `(C, H, W)`, there are no
            images, or a value is not finite.
    """
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        batches = [inputs]
    elif isinstance(inputs, Iterable):
        batches = [item[0] if isinstance(item, (tuple, list)) else item for item in inputs]
    else:
        raise MagicInitError(f"inputs: expected a tensor (N, C, H, W) or an iterable of batches, got {type(inputs).__name__}")
    tensors = []
    for i, batch in enumerate(batches):
        try:
            tensor = torch.as_tensor(batch)
        except (TypeError, ValueError, RuntimeError) as error:
            raise MagicInitError(f"inputs batch {i}: not a tensor ({type(batch).__name__}): {error}") from error
        if tensor.dim() != 4:
            raise MagicInitError(f"inputs batch {i}: shape {tuple(tensor.shape)} is not (N, C, H, W)")
        if tensors and tensor.shape[1:] != tensors[0].shape[1:]:
            raise MagicInitError(f"inputs batch {i}: shape {tuple(tensor.shape)} differs from batch 0's "
                                 f"{tuple(tensors[0].shape)} in (C, H, W)")
        tensors.append(tensor.detach().to(device="cpu", dtype=torch.float32))
    if not tensors or sum(t.shape[0] for t in tensors) == 0:
        raise MagicInitError("inputs: no images (N = 0)")
    x = torch.cat(tensors).contiguous()
    if not torch.isfinite(x).all():
        image = int((~torch.isfinite(x)).flatten(1).any(1).nonzero()[0])
        raise MagicInitError(f"inputs: image {image} holds inf or NaN")
    return x


class _LRNFunction(torch.autograd.Function):
    """PyTorch's local response normalisation, written to ONNX as one `LRN` node.

    `torch.nn.LocalResponseNorm` is a Python composite (pad, 3-D average pooling, pow, div)
    that the TorchScript exporter spells as a shape-computing subgraph (Shape, Gather, If,
    Pad, ...) MagicInit's importer does not read. Both define
    `y = x / (k + α/n · Σ x²)^β` over a window of n channels; for odd n (the only sizes
    MagicInit's LRN takes) the windows are the same, centred on the channel.
    """

    @staticmethod
    def forward(ctx, x, size: int, alpha: float, beta: float, k: float):
        return torch.nn.functional.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k):
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class _ExportableLRN(torch.nn.Module):
    def __init__(self, lrn: torch.nn.LocalResponseNorm):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = int(lrn.size), float(lrn.alpha), float(lrn.beta), float(lrn.k)

    def forward(self, x):
        return _LRNFunction.apply(x, self.size, self.alpha, self.beta, self.k)


def _exportable(model: torch.nn.Module, prefix: str = "") -> None:
    """Replaces, in place, the submodules the exporter would spell in ops MagicInit cannot
    import by ones it writes as single nodes (LocalResponseNorm -> LRN).

    Raises:
        MagicInitError: a LocalResponseNorm of even size (MagicInit's LRN window is centred,
            so its size must be odd).
    """
    for name, child in list(model.named_children()):
        if isinstance(child, torch.nn.LocalResponseNorm):
            if child.size % 2 == 0:
                raise MagicInitError(f"{prefix}{name}: LocalResponseNorm(size={child.size}); MagicInit's LRN takes odd sizes only")
            setattr(model, name, _ExportableLRN(child))
        else:
            _exportable(child, f"{prefix}{name}.")


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: str) -> None:
    """Writes `model` (a CPU float32 copy in eval mode) to ONNX for MagicInit's importer.

    PyTorch ≥ 2.9 exports through `torch.export` by default (the "dynamo" exporter, which
    needs `onnxscript`; in torch 2.15 it folds eval-mode BatchNorm into the convolution
    before it, so the BatchNorm parameters are gone, writes Flatten as a Reshape to the
    example's batch size, and stores the weights in an external data file). This uses the
    TorchScript exporter instead (`dynamo=False`) in `TrainingMode.PRESERVE` on the eval-mode
    copy: its eval-mode peephole pass, which does the same BatchNorm fold, is skipped, while
    constant folding still turns shape arithmetic such as `x.view(x.size(0), -1)` into a
    constant Reshape. Every initializer is kept apart (`keep_initializers_as_inputs=True`:
    otherwise equal tensors, such as a fresh BatchNorm's bias and running mean, are merged
    into one), so each parameter keeps its state-dict name. It writes plain Conv, Gemm,
    Flatten, BatchNormalization, ... nodes with fixed shapes; LocalResponseNorm modules are
    written as one LRN node each (``_LRNFunction``). The graph is named after the model's
    class (the report's `network`).

    Raises:
        MagicInitError: the exporter failed (the message names the model class), or a
            LocalResponseNorm has an even size.
    """
    exported = copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
    _exportable(exported)
    kwargs = dict(input_names=["input"], output_names=["output"], do_constant_folding=True,
                  keep_initializers_as_inputs=True, training=torch.onnx.TrainingMode.PRESERVE)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter announces its deprecation on every call.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            # Raised for shape checks inside layers (traced as constants: the shapes are fixed).
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            # Folding with PRESERVE is deliberate (see above); a parameter that folding would
            # rewrite comes back under a new name, which load_weights refuses, naming it.
            warnings.filterwarnings("ignore", message="It is recommended that constant folding be turned off")
            torch.onnx.export(exported, (example,), path, **kwargs)
    except Exception as error:  # the exporter raises many kinds
        raise MagicInitError(f"torch.onnx.export of {type(model).__name__} failed: {error}") from error
    graph = onnx.load(path)
    graph.graph.name = type(model).__name__
    onnx.save(graph, path)


def refuse_reserved_options(options: dict) -> None:
    """Refuses options `initialize` sets itself or cannot offer, without asking
    `mi-coordinator` (so the reason comes first even where no coordinator is found).

    Raises:
        MagicInitError: a managed option (`output`, `local`, ...) or an unusable one
            (`verify_images`), with the reason.
    """
    for key in options:
        name = key.replace("_", "-")
        if name in MANAGED_OPTIONS:
            raise MagicInitError(f"{key}: set by magicinit.initialize itself; it cannot be passed as an option")
        if name in UNUSABLE_OPTIONS:
            raise MagicInitError(f"{key}: not available through magicinit.initialize: {UNUSABLE_OPTIONS[name]}")


def option_arguments(coordinator: str, options: dict, *, mode: str, init: str) -> list[str]:
    """The `mi-coordinator` arguments for `mode`, `init` and `**options`, checked against
    the options the program itself lists (names, choices, flags). `options` have passed
    ``refuse_reserved_options`` (``initialize`` calls it before looking for the program).

    Raises:
        MagicInitError: an unknown option, a value outside an option's choices, or an
            `init` this program cannot do.
    """
    offered = coordinator_options(coordinator)

    def choice(name: str, value) -> None:
        values = offered[name]["values"]
        if values and str(value) not in values:
            raise MagicInitError(f"{name.replace('-', '_')}={value!r}: mi-coordinator accepts {', '.join(values)}")

    choice("mode", mode)
    arguments = ["--mode", mode]
    if "init" in offered:
        choice("init", init)
        arguments += ["--init", init]
    elif init != "gaussian":
        raise MagicInitError(f"init={init!r}: this mi-coordinator ({coordinator}) has no --init option yet; "
                             f"its starting weights are Gaussian (init='gaussian')")
    for key, value in options.items():
        name = key.replace("_", "-")
        if name not in offered:
            usable = sorted(n.replace("-", "_") for n in offered if n not in MANAGED_OPTIONS and n not in UNUSABLE_OPTIONS)
            raise MagicInitError(f"{key}: not an option of mi-coordinator; options: {', '.join(usable)}")
        if value is None:
            continue
        if offered[name]["kind"] == "flag":
            if not isinstance(value, bool):
                raise MagicInitError(f"{key}={value!r}: a flag, give True or False")
            if value:
                arguments.append(f"--{name}")
            continue
        choice(name, value)
        # The = form keeps a negative number (bias=-0.1) from reading as an option.
        arguments.append(f"--{name}={value}")
    return arguments


def load_weights(model: torch.nn.Module, path: str) -> None:
    """Loads the safetensors file MagicInit wrote into `model` with a strict
    `load_state_dict`: every key of the model gets a value.

    The file holds the parameters and buffers of the exported graph under their state-dict
    names. Integer buffers (BatchNorm's `num_batches_tracked`: a counter, not a weight) keep
    the model's value; so do floating tensors the exported graph does not use (with a
    warning naming them). Values are cast to each tensor's dtype.

    Raises:
        MagicInitError: the file holds a tensor the model does not have (a parameter the
            exporter folded into a computed one), or one of another shape.
    """
    written = load_file(path)
    state = model.state_dict()
    unexpected = sorted(set(written) - set(state))
    if unexpected:
        raise MagicInitError(f"MagicInit initialised tensors {', '.join(unexpected)} of the exported graph, which are not "
                             f"in the model's state dict (keys: {', '.join(list(state)[:8])}, ...): a parameter that "
                             f"forward transforms before use (e.g. F.conv2d(x, self.weight * 2)) is exported as a new, "
                             f"computed tensor and cannot be written back")
    merged, unused = {}, []
    for key, current in state.items():
        if key in written:
            value = written[key]
            if tuple(value.shape) != tuple(current.shape):
                raise MagicInitError(f"{path}: '{key}' has shape {tuple(value.shape)}, the model's is {tuple(current.shape)}")
            merged[key] = value.to(dtype=current.dtype)
        else:
            if current.is_floating_point():
                unused.append(key)
            merged[key] = current
    if unused:
        warnings.warn(f"magicinit: {', '.join(unused)} not in the exported graph (not used by forward); left as they were")
    model.load_state_dict(merged, strict=True)


def initialize(model: torch.nn.Module, inputs, *, mode: str = "both", init: str = "gaussian", workers: int = 1,
               **options) -> dict:
    """Initialises `model`'s weights from data, in place (Krähenbühl et al., ICLR 2016).

    Algorithm 1 (§3.1) makes every output channel of every convolution and linear layer
    have mean β (`bias`, default 0.1) and standard deviation 1 on `inputs`; Algorithm 2
    (§3.2) rescales the layers so that all learn at the same rate.

    Args:
        model: the network; exported to ONNX with one example image, so its forward must
            take one `(N, C, H, W)` tensor. Its layers must be ones MagicInit's ONNX importer
            knows (Conv, Linear, ReLU, pooling, LRN, BatchNorm, Dropout, Flatten, ...).
        inputs: preprocessed images, float, `(N, C, H, W)` — a tensor, an array, or an
            iterable of batches (e.g. a `DataLoader`; of `(x, y)` pairs the `x` is used).
            Used as they are: normalise them the way training will.
        mode: "both" (Gaussian start, Algorithms 1 and 2), "within-layer" (Algorithm 1 only),
            "between-layer" (Algorithm 2 on the model's current weights), "pretrained-both"
            (Algorithms 1 and 2 on the current weights).
        init: starting weights; "gaussian" (others once `mi-coordinator --init` offers them).
        workers: worker processes; 1 computes in the coordinator itself. The weights are
            bitwise the same for any number.
        **options: further `mi-coordinator` options by name, `_` for `-`: `bias=0.1`,
            `rate_measure="weight-gradient"`, `seed=0`, `chunk_size=4`, `threads=2`,
            `verify=True`, ... (checked against the program's own list).

    Returns:
        The run's report (the JSON `mi-coordinator` writes): per layer the channel statistics
        before and after, Algorithm 2's factors and the Figure-1 rows (`figure1Before`,
        `figure1After`), the options, timings.

    Raises:
        MagicInitError: mi-coordinator missing or failing, bad inputs, an unknown option, an
            unsupported `init`, a model the exporter or importer cannot handle.
    """
    if not isinstance(model, torch.nn.Module):
        raise MagicInitError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise MagicInitError(f"workers={workers!r}: give a whole number ≥ 1")
    refuse_reserved_options(options)
    coordinator = find_coordinator()
    arguments = option_arguments(coordinator, options, mode=mode, init=init)
    x = collect_inputs(inputs)
    with tempfile.TemporaryDirectory(prefix="magicinit-") as folder:
        onnx_path, inputs_path, weights_path, report_path = (
            os.path.join(folder, name) for name in ("model.onnx", "inputs.safetensors", "weights.safetensors", "report.json"))
        export_onnx(model, x[:1], onnx_path)
        save_file({"inputs": x}, inputs_path)
        log.info("initialising %s on %d input(s) of shape %s", type(model).__name__, x.shape[0], tuple(x.shape[1:]))
        run_coordinator(coordinator, ["--model", onnx_path, "--inputs", inputs_path, "--output", weights_path,
                                      "--report", report_path, *(["--local", str(workers)] if workers > 1 else []),
                                      *arguments])
        load_weights(model, weights_path)
        with open(report_path, encoding="utf-8") as f:
            return json.load(f)
