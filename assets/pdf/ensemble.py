"""The compact model as the mean of several training seeds' networks (imports torch: load this module lazily).

One training run is one draw: two seeds on the same profiles put some measured files at different ranks. The
mean of the members' logits (the geometric mean of their probabilities, renormalised) gives one answer that does
not depend on which draw a user got; its own temperature is then fitted like a single network's.
"""

from __future__ import annotations

import torch
from torch import nn

from assets.pdf.compact import CompactSettings, build_compact_cnn


class LogitMean(nn.Module):
    """Mean logits (n, n_classes) of n_members compact networks of one architecture.

    Built from data only (sizes and settings; the weights come from a state dict), so the project's storage can
    keep it without pickling (resources/torch_state.py)."""

    def __init__(self, n_points: int, n_classes: int, settings: CompactSettings, n_members: int):
        super().__init__()
        self.n_points, self.n_classes, self.settings, self.n_members = n_points, n_classes, settings, n_members
        self.members = nn.ModuleList(build_compact_cnn(n_points, n_classes, settings) for _ in range(n_members))

    def forward(self, x):
        return torch.stack([member(x) for member in self.members]).mean(0)
