"""Compute settings shared by every training and simulation asset.

One `ComputeResource(device="cuda")` moves a whole run to the GPU. The resource
is frozen (Dagster resources are), so it only *returns* resolved values.
"""

from __future__ import annotations

import os
import random
from typing import Literal

import numpy as np
from dagster import ConfigurableResource


def quiet_tensorflow_without_cuda() -> None:
    """On a machine with no NVIDIA device, hide TensorFlow's C++ log below FATAL (its failed cuInit probe is an ERROR
    line that means only "no GPU here"). Call before TensorFlow is imported; an explicit TF_CPP_MIN_LOG_LEVEL wins."""
    import glob

    if not glob.glob("/dev/nvidia[0-9]*"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def cuda_available() -> bool:
    """True when torch sees a CUDA device; torch is imported lazily (it is heavy)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    return bool(torch.cuda.is_available())


class ComputeResource(ConfigurableResource):
    """Device (auto | cpu | cuda), random seed and CPU thread count for a run."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    num_threads: int = 0  # 0: leave the libraries' own default

    def resolved_device(self) -> str:
        """'cuda' or 'cpu'. Asking for cuda on a machine without one is an error."""
        if self.device == "cpu":
            return "cpu"
        has_cuda = cuda_available()
        if self.device == "cuda" and not has_cuda:
            raise RuntimeError("ComputeResource(device='cuda') but torch sees no CUDA device")
        return "cuda" if has_cuda else "cpu"

    def xgboost_device(self) -> str:
        """Value for XGBoost's `device` parameter."""
        return self.resolved_device()

    def torch_device(self):
        import torch

        return torch.device(self.resolved_device())

    def keras_device(self) -> str:
        """Device scope string for `keras.device(...)` on the TF and torch backends.

        Plain "cpu", not "cpu:0": torch tells the two apart, and a "cpu:0" scope makes
        the Keras torch backend copy every weight off its Parameter (nothing trains).
        """
        return "gpu:0" if self.resolved_device() == "cuda" else "cpu"

    def n_jobs(self) -> int:
        """Thread count for scikit-learn / XGBoost (-1 = all cores)."""
        return self.num_threads if self.num_threads > 0 else -1

    def rng(self, offset: int = 0) -> np.random.Generator:
        """A numpy generator derived from the run seed; offset separates streams."""
        return np.random.default_rng(self.seed + offset)

    def seed_everything(self) -> None:
        """Seed Python, numpy, torch and Keras so a rerun gives the same model."""
        random.seed(self.seed)
        np.random.seed(self.seed)
        os.environ.setdefault("PYTHONHASHSEED", str(self.seed))
        try:
            import torch

            torch.manual_seed(self.seed)
            if self.num_threads > 0:
                torch.set_num_threads(self.num_threads)
        except ImportError:  # pragma: no cover
            pass
        if "keras" in os.sys.modules:
            import keras

            keras.utils.set_random_seed(self.seed)
