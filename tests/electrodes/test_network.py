"""The Keras network: architecture, learning a linear law, and the torch backend."""

import os
import subprocess
import sys
import textwrap

import numpy as np

from assets.electrodes.network import TrainingSettings, build_network, fit_network, sample_candidates


def test_three_hidden_leaky_relu_layers_of_the_requested_widths():
    model = build_network(10, (8, 16, 4), TrainingSettings(negative_slope=0.1))
    leaky = [layer for layer in model.layers if type(layer).__name__ == "LeakyReLU"]
    dense = [layer.units for layer in model.layers if type(layer).__name__ == "Dense"]
    assert len(leaky) == 3 and all(layer.negative_slope == np.float32(0.1) for layer in leaky)
    assert dense == [8, 16, 4, 1]


def test_network_learns_a_linear_law_far_better_than_the_mean():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(100, 6))
    target = 2.0 * features[:, 0] - features[:, 1] + 3.5
    features[rng.random(features.shape) < 0.05] = np.nan  # featurizer failures: imputed
    fitted = fit_network(features[:80], target[:80], (32, 32, 32), TrainingSettings(epochs=30, patience=10))
    error = np.abs(fitted.predict(features[80:]) - target[80:]).mean()
    baseline = np.abs(target[:80].mean() - target[80:]).mean()
    assert error < 0.4 * baseline
    assert list(fitted.history.columns[:3]) == ["epoch", "loss", "val_loss"]


def test_candidates_are_distinct_draws_from_the_grid():
    candidates = sample_candidates([8, 16], 5, np.random.default_rng(0))
    assert len(set(candidates)) == 5 and all(len(c) == 3 and set(c) <= {8, 16} for c in candidates)
    assert len(sample_candidates([8], 5, np.random.default_rng(0))) == 1


def test_torch_backend_trains_saves_and_reloads(tmp_path):
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        from assets.electrodes.network import TrainingSettings, fit_network, predict_scaled
        from resources.compute import ComputeResource
        assert keras.backend.backend() == "torch"
        rng = np.random.default_rng(1)
        x = rng.normal(size=(30, 4)); y = x[:, 0]
        with keras.device(ComputeResource(device="cpu").keras_device()):
            fitted = fit_network(x, y, (8, 8, 8), TrainingSettings(epochs=3))
        path = r"{tmp_path / 'net.keras'}"
        fitted.model.save(path)
        reloaded = keras.saving.load_model(path, compile=False)
        same = np.allclose(predict_scaled(reloaded, fitted.preprocess, x), predict_scaled(fitted.model, fitted.preprocess, x))
        print("same", same)
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "same True" in result.stdout
