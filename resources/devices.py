"""What training does on a GPU that it does not on the CPU (no Dagster import: science code may use it).

The device names are the ones `ComputeResource` returns: a torch device ("cuda", "cpu") or a Keras scope
("gpu:0", "cpu"). On the CPU every helper here leaves training exactly as configured.
"""

from __future__ import annotations

import contextlib


def is_gpu(device) -> bool:
    """True for a CUDA torch device or a Keras GPU scope: "cuda", "cuda:0", torch.device("cuda"), "gpu:0"."""
    return str(device).split(":")[0] in ("cuda", "gpu")


def training_batch_size(requested: int, device, device_filling: int) -> int:
    """`requested` on the CPU; at least `device_filling` on a GPU, where small batches leave it idle (issue 16, H200:
    the PDF CNN trains 1.7k samples/s at batch 64, 47k at 1024). device_filling 0 keeps `requested` everywhere."""
    return max(requested, device_filling) if is_gpu(device) else requested


@contextlib.contextmanager
def keras_mixed_precision(device: str):
    """Keras' mixed_bfloat16 policy for the layers built inside the block on a GPU (float32 variables, bfloat16
    compute, no loss scaling); nothing on the CPU. The policy is global in Keras: the previous one comes back on exit,
    so no other asset builds under it."""
    if not is_gpu(device):
        yield
        return
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def keras_float32_copy(model, build):
    """build() (a float32 model of the same architecture) holding model's weights: a model trained under the mixed
    policy then predicts, and is stored, in float32 like a CPU-trained one (variables are float32 under either)."""
    copy = build()
    copy.set_weights(model.get_weights())
    return copy
