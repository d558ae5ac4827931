"""Clear errors from magicinit.initialize, and the Figure-1 plot."""
import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

import magicinit
from conftest import PlainCNN, photo_tensor


@pytest.fixture(scope="module")
def x():
    return photo_tensor(32, count=12)


def test_initOtherThanGaussian_failsClearlyUntilTheCoordinatorOffersIt(coordinator, x):
    offered = magicinit.coordinator_options(coordinator)
    with pytest.raises(magicinit.MagicInitError) as caught:
        magicinit.initialize(PlainCNN(), x, init="no-such-init")
    if "init" in offered:
        assert "mi-coordinator accepts" in str(caught.value) and "gaussian" in str(caught.value)
    else:
        assert "has no --init option" in str(caught.value)
        with pytest.raises(magicinit.MagicInitError, match="has no --init option"):
            magicinit.initialize(PlainCNN(), x, init="pca")


def test_optionsCheckedAgainstTheProgramsOwnList(coordinator, x):
    offered = magicinit.coordinator_options(coordinator)
    assert offered["mode"]["values"] == ["both", "within-layer", "between-layer", "pretrained-both"]
    assert offered["verify"]["kind"] == "flag" and offered["bias"]["kind"] == "option"
    cases = [
        (dict(learning_rate=0.1), "learning_rate: not an option of mi-coordinator; options: "),
        (dict(output="w.safetensors"), "output: set by magicinit.initialize itself"),
        (dict(mode="sideways"), "mode='sideways': mi-coordinator accepts both, within-layer, between-layer, pretrained-both"),
        (dict(verify="yes"), "verify='yes': a flag, give True or False"),
        (dict(workers=0), "workers=0: give a whole number"),
        (dict(verify_images="photos"), "verify_images: not available through magicinit.initialize: "),
    ]
    for options, message in cases:
        with pytest.raises(magicinit.MagicInitError) as caught:
            magicinit.initialize(PlainCNN(), x, **options)
        assert message in str(caught.value)
    with pytest.raises(magicinit.MagicInitError) as caught:
        magicinit.initialize(PlainCNN(), x, learning_rate=0.1)
    assert "verify_images" not in str(caught.value), "an option initialize refuses is offered in the list"
    if offered["rate-measure"]["values"]:
        with pytest.raises(magicinit.MagicInitError, match="rate_measure='fast': mi-coordinator accepts"):
            magicinit.initialize(PlainCNN(), x, rate_measure="fast")


def test_coordinatorNotFound_saysWhereItLookedAndHowToBuild(tmp_path, monkeypatch):
    monkeypatch.delenv("MAGICINIT_COORDINATOR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(magicinit._coordinator, "__file__", str(tmp_path / "site" / "magicinit" / "_coordinator.py"))
    with pytest.raises(magicinit.MagicInitError) as caught:
        magicinit.find_coordinator()
    message = str(caught.value)
    assert message.startswith("mi-coordinator not found: MAGICINIT_COORDINATOR is unset, it is not on PATH, "
                              "and neither this package nor the current folder is inside a MagicInit clone; "), message
    assert "swift build -c release --product mi-coordinator" in message, message


def test_reservedOptions_refusedWithTheirReasonEvenWithoutACoordinator(tmp_path, monkeypatch, x):
    monkeypatch.delenv("MAGICINIT_COORDINATOR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(magicinit._coordinator, "__file__", str(tmp_path / "site" / "magicinit" / "_coordinator.py"))
    for options, message in [(dict(verify_images="photos"), "verify_images: not available through magicinit.initialize: "),
                             (dict(local=2), "local: set by magicinit.initialize itself")]:
        with pytest.raises(magicinit.MagicInitError) as caught:
            magicinit.initialize(PlainCNN(), x, **options)
        assert message in str(caught.value), str(caught.value)
    with pytest.raises(magicinit.MagicInitError, match="^mi-coordinator not found: "):
        magicinit.initialize(PlainCNN(), x, seed=1)


def test_badInputs_refusedBeforeAnythingRuns(x):
    nan = x.clone()
    nan[3, 0, 1, 1] = float("nan")
    cases = [
        (x[0], "inputs batch 0: shape (3, 32, 32) is not (N, C, H, W)"),
        ([x[:4], x[:4, :, :16]], "inputs batch 1: shape (4, 3, 16, 32) differs from batch 0's (4, 3, 32, 32)"),
        (nan, "inputs: image 3 holds inf or NaN"),
        ([], "inputs: no images"),
        (42, "inputs: expected a tensor (N, C, H, W) or an iterable of batches, got int"),
    ]
    for inputs, message in cases:
        with pytest.raises(magicinit.MagicInitError) as caught:
            magicinit.initialize(PlainCNN(), inputs)
        assert message in str(caught.value)
    # Channels the model does not take: the exporter's own error, named.
    with pytest.raises(magicinit.MagicInitError, match="torch.onnx.export of PlainCNN failed"):
        magicinit.initialize(PlainCNN(channels=1), x)


def test_layerMagicInitCannotImport_namesTheOperator(x):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.GELU(), torch.nn.Flatten(), torch.nn.Linear(4 * 30 * 30, 2))
    with pytest.raises(magicinit.MagicInitError) as caught:
        magicinit.initialize(model, x)
    assert "mi-coordinator failed (exit status 1)" in str(caught.value) and "Gelu" in str(caught.value)


def test_parameterTransformedInForward_refusedNamingTheComputedTensor(x):
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(4, 3, 3, 3))
            self.fc = torch.nn.Linear(4 * 30 * 30, 2)

        def forward(self, x):
            return self.fc(torch.flatten(torch.relu(torch.nn.functional.conv2d(x, self.weight * 2)), 1))

    model = Scaled()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(magicinit.MagicInitError, match=r"MagicInit initialised tensors onnx::Conv_\d+ of the exported graph"):
        magicinit.initialize(model, x, mode="within-layer")
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items()), "a failed run changed the model"


def test_coordinatorNotFound_saysHowToBuildIt(monkeypatch, tmp_path, x):
    monkeypatch.setenv("MAGICINIT_COORDINATOR", str(tmp_path / "mi-coordinator"))
    with pytest.raises(magicinit.MagicInitError) as caught:
        magicinit.initialize(PlainCNN(), x)
    message = str(caught.value)
    assert f"MAGICINIT_COORDINATOR={tmp_path / 'mi-coordinator'} is not an executable file" in message
    assert "swift build -c release --product mi-coordinator" in message


def test_plotReport_drawsFigure1_beforeAndAfter(tmp_path, x):
    torch.manual_seed(5)
    report = magicinit.initialize(PlainCNN(), x)
    json.dumps(report)  # plain JSON data
    layers = [row["layer"] for row in report["figure1After"]]
    assert len(layers) == 5 and [row["layer"] for row in report["figure1Before"]] == layers
    path = tmp_path / "plots" / "figure1.png"
    magicinit.plot_report(report, path)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 600 and image.height > 300
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10, "the figure is blank"
    within = magicinit.initialize(PlainCNN(), x, mode="within-layer")
    with pytest.raises(magicinit.MagicInitError, match="has no Figure-1 rows"):
        magicinit.plot_report(within, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
