"""resources.devices: on the CPU training is exactly as configured; on a GPU mixed precision and a device-filling
batch, with Keras' global policy restored (issue 16). GPU settings run here on the CPU, which both backends allow."""

from __future__ import annotations

import numpy as np
import pytest

from resources.compute import ComputeResource
from resources.devices import is_gpu, keras_mixed_precision, training_batch_size


def test_gpu_names_are_the_ones_compute_resource_returns():
    import torch

    assert is_gpu("cuda") and is_gpu("cuda:1") and is_gpu(torch.device("cuda")) and is_gpu("gpu:0")
    assert not is_gpu("cpu") and not is_gpu(torch.device("cpu"))
    cpu = ComputeResource(device="cpu")
    assert not is_gpu(cpu.keras_device()) and not is_gpu(cpu.torch_device())


def test_batch_grows_to_fill_a_gpu_and_stays_as_asked_on_the_cpu():
    assert training_batch_size(32, "cpu", 1024) == 32
    assert training_batch_size(32, "gpu:0", 1024) == 1024
    assert training_batch_size(4096, "cuda", 1024) == 4096
    assert training_batch_size(32, "gpu:0", 0) == 32


def test_mixed_policy_lives_only_inside_the_block():
    import keras

    assert keras.mixed_precision.global_policy().name == "float32"
    with keras_mixed_precision("cpu"):
        assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(RuntimeError):
        with keras_mixed_precision("gpu:0"):
            assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
            raise RuntimeError("training failed")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_phase_cnn_trained_with_gpu_settings_is_mixed_inside_and_float32_outside(monkeypatch):
    """device "gpu:0" outside a keras.device scope: the GPU's policy and batch, computed on the CPU."""
    import keras

    from assets.diffraction.cnn import predict_probabilities, train_phase_cnn
    from resources import devices

    seen = {}
    copy = devices.keras_float32_copy

    def spy(model, build):
        seen["policies"] = {layer.dtype_policy.name for layer in model.layers[:-1]}
        return copy(model, build)

    monkeypatch.setattr(devices, "keras_float32_copy", spy)
    rng = np.random.default_rng(0)
    profiles, labels = rng.random((48, 80)), rng.integers(0, 3, 48)
    model, history = train_phase_cnn(profiles, labels, 3, epochs=1, batch_size=8, device="gpu:0", cuda_batch_size=16)
    assert seen["policies"] == {"mixed_bfloat16"}
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert keras.mixed_precision.global_policy().name == "float32"
    assert np.isfinite(history["loss"]).all()
    probabilities = predict_probabilities(model, profiles[:4])
    assert probabilities.dtype == np.float32 and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
