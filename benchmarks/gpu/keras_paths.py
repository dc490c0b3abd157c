"""benchmarks.gpu sections pdf_cnn and diffraction_cnn: Keras training in a subprocess (KERAS_BACKEND=torch)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import traceback

import numpy as np

from benchmarks.gpu.harness import (
    CNN_PROBABILITY_TOLERANCE,
    KERAS_DEVICES,
    REPO,
    Context,
    synchronize,
)


def keras_model(name: str):
    """(builder() -> compiled model, n_points, n_classes, sparse labels?) for a Keras section."""
    import keras

    if name == "pdf_cnn":
        from assets.pdf.calculator import MODEL_GRID_A
        from assets.pdf.classifiers import build_cnn
        from assets.pdf.structures import DEFAULT_SPACE_GROUPS

        n_points, n_classes = len(MODEL_GRID_A), len(DEFAULT_SPACE_GROUPS)

        def build():  # as train_cnn compiles it (its first learning rate)
            model = build_cnn(n_points, n_classes)
            model.compile(optimizer=keras.optimizers.Adam(5e-4), loss="categorical_crossentropy",
                          metrics=["accuracy"])
            return model

        return build, n_points, n_classes, False
    if name == "diffraction_cnn":
        from assets.diffraction.cnn import build_phase_cnn
        from assets.diffraction.requests import SimulationRequest

        request = SimulationRequest()
        n_points, n_classes = request.crop_points, len(request.phases)
        return (lambda: build_phase_cnn(n_points, n_classes)), n_points, n_classes, True
    raise ValueError(name)


def keras_figures(name: str, spec: dict) -> dict:
    """Training samples/s per batch size on each side (equal work), device-only scale runs, agreement."""
    import keras
    import torch

    from resources.devices import is_gpu, keras_mixed_precision

    build, n_points, n_classes, sparse = keras_model(name)
    rng = np.random.default_rng(0)
    total = max(spec["samples"], spec["scale_samples"])
    x = rng.random((total, n_points, 1), dtype=np.float32)
    labels = rng.integers(0, n_classes, total)
    y = labels if sparse else np.eye(n_classes, dtype=np.float32)[labels]
    two_sides = spec["two_sides"]
    devices = {"device": KERAS_DEVICES[spec["device"]], "cpu": KERAS_DEVICES["cpu"]}
    torch_devices = {"device": spec["device"], "cpu": "cpu"}
    sides = ["device", "cpu"] if two_sides else ["device"]
    figures: dict = {"n_points": n_points, "n_classes": n_classes, "samples_each_side": spec["samples"],
                     "device_mixed_precision": is_gpu(devices["device"])}  # as the trainers build on the device
    trained = {}

    def train_rate(side: str, batch: int, samples: int, trainers_policy: bool = True) -> tuple[float, float, object]:
        """trainers_policy: build under the trainers' policy for the side (mixed_bfloat16 on a GPU), else the global one."""
        with keras.device(devices[side]):
            with keras_mixed_precision(devices[side]) if trainers_policy else contextlib.nullcontext():
                model = build()
            model.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0)  # warm-up
            synchronize(torch_devices[side])
            started = time.perf_counter()
            history = model.fit(x[:samples], y[:samples], batch_size=batch, epochs=1, verbose=0, shuffle=True)
            synchronize(torch_devices[side])
            return samples / (time.perf_counter() - started), float(history.history["loss"][-1]), model

    torch.set_num_threads(spec["n_cores"])
    for batch in spec["batches"]:
        for side in sides:
            rate, loss, model = train_rate(side, batch, spec["samples"])
            figures[f"{side}_train_samples_per_s_batch_{batch}"] = rate
            figures[f"{side}_train_loss_batch_{batch}"] = loss
            trained[side] = model
        if two_sides:
            figures[f"speedup_batch_{batch}"] = (figures[f"device_train_samples_per_s_batch_{batch}"]
                                                 / figures[f"cpu_train_samples_per_s_batch_{batch}"])
    if two_sides and spec["scale_samples"]:
        for policy in ("float32", "mixed_bfloat16"):
            keras.mixed_precision.set_global_policy(policy)
            try:
                for batch in spec["batches"]:
                    rate, loss, _ = train_rate("device", batch, spec["scale_samples"], trainers_policy=False)
                    figures[f"scale_{policy}_batch_{batch}_device_train_samples_per_s"] = rate
                    figures[f"scale_{policy}_batch_{batch}_device_train_loss"] = loss
            finally:
                keras.mixed_precision.set_global_policy("float32")
    # Agreement: the CPU-trained weights give the same probabilities on the device.
    reference_model = trained[sides[-1]]
    probe = x[:256]
    with keras.device(KERAS_DEVICES["cpu"]):
        expected = keras.ops.convert_to_numpy(reference_model.predict(probe, batch_size=128, verbose=0))
    with keras.device(devices["device"]):
        copy = build()
        copy.set_weights(reference_model.get_weights())
        actual = keras.ops.convert_to_numpy(copy.predict(probe, batch_size=128, verbose=0))
    figures["probability_max_abs_difference_device_vs_cpu"] = float(np.abs(actual - expected).max())
    losses = [v for k, v in figures.items() if k.endswith("loss") or "_loss_" in k]
    figures["all_training_losses_finite"] = bool(np.all(np.isfinite(losses)))
    figures["keras_version"] = keras.__version__
    figures["keras_backend"] = keras.backend.backend()
    return figures


def keras_worker() -> int:
    """Subprocess entry: spec JSON on stdin, one JSON line of figures per section on stdout (last line)."""
    spec = json.loads(sys.stdin.read())
    results = {}
    for name in spec["sections"]:
        try:
            results[name] = keras_figures(name, spec)
        except Exception as error:  # noqa: BLE001 - reported as <section>_error by the parent
            results[name] = {"error": f"{type(error).__name__}: {error}",
                             "traceback": traceback.format_exc(limit=6)}
    print("KERAS_RESULTS " + json.dumps(results), flush=True)
    return 0


def section_keras(ctx: Context, names: list[str]) -> None:
    report, sizes = ctx.report, ctx.sizes
    spec = dict(sections=names, device=ctx.device, samples=sizes.cnn_samples, batches=list(sizes.cnn_batches),
                scale_samples=sizes.cnn_scale_samples if ctx.two_sides else 0, n_cores=ctx.n_cores,
                two_sides=ctx.two_sides)
    env = {**os.environ, "KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    try:
        done = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--keras-worker"], input=json.dumps(spec),
                              capture_output=True, text=True, env=env, timeout=sizes.keras_timeout_s,
                              cwd=REPO)
    except subprocess.TimeoutExpired:
        for name in names:
            report.error(name, f"the Keras subprocess ran past {sizes.keras_timeout_s} s")
        return
    lines = [line for line in done.stdout.splitlines() if line.startswith("KERAS_RESULTS ")]
    if done.returncode != 0 or not lines:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        for name in names:
            report.error(name, f"the Keras subprocess exited {done.returncode}: {' | '.join(tail)}")
        return
    results = json.loads(lines[-1][len("KERAS_RESULTS "):])
    for name in names:
        figures = results.get(name, {"error": "no result"})
        if "error" in figures:
            report.error(name, figures["error"])
            print(figures.get("traceback", ""), file=sys.stderr)
            continue
        mixed = figures["device_mixed_precision"]
        for key in ("keras_backend", "keras_version", "n_points", "n_classes", "samples_each_side",
                    "device_mixed_precision"):
            report.figure(name, key, figures.pop(key))
        bound_keys = ("probability_max_abs_difference_device_vs_cpu", "all_training_losses_finite")
        for key, value in figures.items():
            if key not in bound_keys:
                report.figure(name, key, value)
        if ctx.two_sides:
            batch = max(sizes.cnn_batches)
            device_rate = figures[f"device_train_samples_per_s_batch_{batch}"]
            report.speedup(name, device_rate, figures[f"cpu_train_samples_per_s_batch_{batch}"],
                           f"batch {batch}, {sizes.cnn_samples} samples each side, device "
                           f"{'mixed_bfloat16' if mixed else 'float32'}, CPU float32")
        report.agreement(name, [
            ("probability_max_abs_difference_device_vs_cpu", figures["probability_max_abs_difference_device_vs_cpu"],
             CNN_PROBABILITY_TOLERANCE),
            ("training_losses_not_finite", 0.0 if figures["all_training_losses_finite"] else 1.0, 0.0),
        ])
