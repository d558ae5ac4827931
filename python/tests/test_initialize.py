"""magicinit.initialize on small PyTorch CNNs and real photos: what Algorithm 1 promises,
checked in PyTorch alone; strict loading with BatchNorm; the same weights for any number of
workers and any batching of the inputs."""
import copy

import pytest
import torch

import magicinit
from conftest import BatchNormCNN, LRNCNN, PlainCNN, photo_tensor

TOLERANCE = 1e-3


def channel_statistics(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """Per Conv2d/Linear module: the mean and (population) standard deviation of every
    output channel before any nonlinearity, over all images and positions, in float64."""
    stats, hooks = {}, []
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            def record(module, inputs, output, name=name):
                z = output.detach().double().transpose(0, 1).reshape(output.shape[1], -1)
                stats[name] = (z.mean(dim=1), z.std(dim=1, unbiased=False))
            hooks.append(module.register_forward_hook(record))
    model.eval()
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return stats


def assert_centred(stats: dict, beta: float) -> None:
    worst = {name: (float((mean - beta).abs().max()), float((std - 1).abs().max())) for name, (mean, std) in stats.items()}
    bad = {name: w for name, w in worst.items() if w[0] > TOLERANCE or w[1] > TOLERANCE}
    assert not bad, f"channels off mean {beta} / std 1 (max |mean-β|, max |std-1|): {bad}; all: {worst}"


def test_withinLayer_everyConvAndLinearChannel_meanBetaStdOne_inPyTorch():
    torch.manual_seed(0)
    model = PlainCNN()
    x = photo_tensor(32)
    report = magicinit.initialize(model, x, mode="within-layer")
    stats = channel_statistics(model, x)
    assert sorted(stats) == ["classifier.1", "classifier.4", "features.0", "features.3", "features.6"]
    assert_centred(stats, 0.1)
    assert report["images"] == 32 and report["options"]["mode"] == "within-layer"
    assert [layer["channels"] for layer in report["layers"]] == [12, 16, 16, 32, 10]


def test_batchNormModel_loadsStrictly_negativeBeta_greyscale():
    torch.manual_seed(1)
    model = BatchNormCNN(channels=1, size=28)
    model.bn1.num_batches_tracked.fill_(7)
    before = copy.deepcopy(model.state_dict())
    x = photo_tensor(28, grey=True)
    magicinit.initialize(model, x, mode="within-layer", bias=-0.1)
    after = model.state_dict()
    assert list(after) == list(before)  # strict: every key, nothing dropped
    assert int(after["bn1.num_batches_tracked"]) == 7 and after["bn1.num_batches_tracked"].dtype == torch.long
    for key in ("conv1.weight", "conv1.bias", "conv2.weight", "fc.weight"):
        assert not torch.equal(after[key], before[key]), f"{key} unchanged"
    for key in ("bn1.running_mean", "bn1.running_var", "bn1.weight", "bn1.bias"):
        assert torch.equal(after[key], before[key]), f"{key} changed by Algorithm 1"
    # conv2 is measured through bn1 (inference mode: running statistics).
    assert_centred(channel_statistics(model, x), -0.1)


def test_bothAlgorithms_oneAndTwoWorkers_tensorAndBatches_bitwiseIdentical():
    x = photo_tensor(28, grey=True)
    torch.manual_seed(2)
    reference = BatchNormCNN()
    models = [copy.deepcopy(reference) for _ in range(3)]
    reports = [
        magicinit.initialize(models[0], x, seed=3),
        magicinit.initialize(models[1], x, workers=2, seed=3),
        magicinit.initialize(models[2], torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(len(x))),
                                                                    batch_size=5), seed=3),
    ]
    for other in models[1:]:
        for key, value in models[0].state_dict().items():
            assert torch.equal(value, other.state_dict()[key]), f"{key} differs"
    assert not torch.equal(models[0].conv1.weight, reference.conv1.weight)
    assert all(r["algorithm2"] is not None and len(r["figure1After"]) == 3 for r in reports)


def test_betweenLayer_rescalesTheModelsOwnWeights_keepingTheFunctionUpToScale():
    torch.manual_seed(4)
    model = PlainCNN()
    x = photo_tensor(32)
    magicinit.initialize(model, x, mode="within-layer")
    rescaled = copy.deepcopy(model)
    report = magicinit.initialize(rescaled, x, mode="between-layer")
    assert report["algorithm2"]["rateSpreadAfter"] < report["algorithm2"]["rateSpreadBefore"]
    model.eval(), rescaled.eval()
    with torch.no_grad():
        a, b = model(x).double(), rescaled(x).double()
    # ReLU/max-pooling network: Algorithm 2 changes the output by one global factor only.
    scale = float((a * b).sum() / (a * a).sum())
    assert float((b - scale * a).abs().max()) <= 1e-4 * float(b.abs().max()), "the network function changed"


def test_localResponseNorm_exportedAsOneLRNNode_statisticsHoldThroughIt():
    torch.manual_seed(6)
    model = LRNCNN()
    x = photo_tensor(28, grey=True)
    report = magicinit.initialize(model, x, mode="within-layer")
    assert report["network"] == "LRNCNN"
    # conv2 and the linear layers are measured through the LRNs: MagicInit's LRN and
    # PyTorch's must compute the same function for these to hold in PyTorch.
    assert_centred(channel_statistics(model, x), 0.1)
    both = magicinit.initialize(LRNCNN(), x)
    assert both["algorithm2"]["homogeneous"] is False and len(both["figure1After"]) == 4
    even = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.LocalResponseNorm(4))
    with pytest.raises(magicinit.MagicInitError, match=r"^1: LocalResponseNorm\(size=4\); MagicInit's LRN takes odd sizes only"):
        magicinit.initialize(even, x)
