"""`mi-coordinator --inputs` with files written by numpy and safetensors themselves: the
weights are byte-identical to those from the image files the tensor was preprocessed from."""
import subprocess

import numpy as np
from safetensors.numpy import load_file

from conftest import PHOTOS


def run(coordinator, *arguments):
    result = subprocess.run([coordinator, *map(str, arguments)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def test_npyAndSafetensorsInputs_weightsByteIdenticalToImageFiles(coordinator, tmp_path):
    common = ["--network", "small", "--chunk-size", "3", "--seed", "11"]
    run(coordinator, *common, "--images", PHOTOS, "--max-images", "9", "--dump-inputs", tmp_path / "dumped.safetensors",
        "--output", tmp_path / "files.safetensors")
    images = load_file(str(tmp_path / "dumped.safetensors"))["images"]
    assert images.shape == (9, 3, 32, 32) and images.dtype == np.float32
    np.save(tmp_path / "inputs.npy", images)
    np.save(tmp_path / "fortran.npy", np.asfortranarray(images))
    reference = (tmp_path / "files.safetensors").read_bytes()
    for name, extra in [("npy", ["--inputs", tmp_path / "inputs.npy"]),
                        ("fortran", ["--inputs", tmp_path / "fortran.npy", "--local", "2"]),
                        ("safetensors", ["--inputs", tmp_path / "dumped.safetensors", "--local", "2"])]:
        run(coordinator, *common, *extra, "--output", tmp_path / f"{name}.safetensors")
        assert (tmp_path / f"{name}.safetensors").read_bytes() == reference, f"{name}: weights differ"


def test_wrongInputs_refusedNamingTheFileAndShapes(coordinator, tmp_path):
    np.save(tmp_path / "grey.npy", np.zeros((4, 1, 32, 32), np.float32))
    np.save(tmp_path / "f64.npy", np.zeros((4, 3, 32, 32), np.float64))
    for name, expected in [("grey.npy", "inputs of shape (4, 1, 32, 32) do not fit the network's input (3, 32, 32)"),
                           ("f64.npy", "dtype '<f8'; MagicInit reads float32")]:
        result = subprocess.run([coordinator, "--network", "small", "--inputs", str(tmp_path / name),
                                 "--output", str(tmp_path / "out" / "w.safetensors")], capture_output=True, text=True)
        assert result.returncode == 1
        assert f"{tmp_path / name}: " in result.stderr and expected in result.stderr, result.stderr
        assert not (tmp_path / "out").exists()
