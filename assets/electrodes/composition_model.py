"""A learned composition model in torch: attention over the elements of an electrode, weighted by fraction (no Dagster).

Roost/CrabNet-like and small. Each element of the discharged composition is a token:
its Magpie element properties (fixed, standardised) plus a learned embedding, its
atomic fraction in the discharged and in the charged composition, and their
difference (non-zero for the working ion). Two self-attention layers let each element see its
neighbours in the formula (O next to Co is not O next to P); a fraction-weighted
attention pooling gives one vector per electrode, which is joined with the host
information (working ion, crystal system and lattice centring, intercalation or
conversion, ion per host and host-cation oxidation states: the `ion`, `structure`,
`host` and `redox` feature columns) and mapped to the voltage by a small MLP.

The model sees a numeric matrix like every other model of the pipeline (slot columns
from `encode_compositions`, then host columns), so it shares `train_estimator`, the
folds and `ClippedRegressor`. It is trained with the L1 loss on the standardised
target, AdamW and a one-cycle (warm-up, then cosine) learning rate; about half a minute per fit on one idle
CPU core at the default size (2,000 rows, 40 epochs).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from torch import nn

MAX_ELEMENTS = 8  # slots per electrode (the dev export has at most 7 elements); more are dropped, smallest first
SLOT_FIELDS = ("z", "fraction_discharged", "fraction_charged")
HOST_GROUPS = ("ion", "structure", "host", "redox")
MAX_Z = 103
ELEMENT_PROPERTIES = (
    "Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row", "CovalentRadius", "Electronegativity",
    "NsValence", "NpValence", "NdValence", "NfValence", "NValence", "NsUnfilled", "NpUnfilled", "NdUnfilled",
    "NUnfilled", "GSvolume_pa", "GSbandgap", "GSmagmom",
)


def slot_columns(max_elements: int = MAX_ELEMENTS) -> list[str]:
    return [f"slot{i}:{field}" for field in SLOT_FIELDS for i in range(max_elements)]


def encode_compositions(discharged: list[str], charged: list[str], max_elements: int = MAX_ELEMENTS) -> pd.DataFrame:
    """Per electrode: atomic number (0 = empty slot) and atomic fractions in both compositions, largest first."""
    from assets.electrodes.formulas import parse_composition

    rows = []
    for discharged_text, charged_text in zip(discharged, charged):
        full = parse_composition(discharged_text).fractional_composition
        host = parse_composition(charged_text).fractional_composition if charged_text else full
        elements = sorted(full.elements, key=lambda el: -full[el])[:max_elements]
        row = np.zeros((len(SLOT_FIELDS), max_elements))
        for i, element in enumerate(elements):
            row[:, i] = element.Z, full[element], host[element] if element in host else 0.0
        rows.append(row.ravel())
    return pd.DataFrame(np.array(rows).reshape(-1, len(SLOT_FIELDS) * max_elements), columns=slot_columns(max_elements))


def host_columns(table: pd.DataFrame) -> list[str]:
    """Feature columns of the host groups (working ion, structure, host type, redox) present in `table`."""
    return [c for c in table.columns if c.split(":", 1)[0] in HOST_GROUPS]


def with_compositions(table: pd.DataFrame) -> pd.DataFrame:
    """`table` (formula_discharge, formula_charge columns) with the slot columns of encode_compositions added."""
    encoded = encode_compositions(list(table["formula_discharge"]), list(table["formula_charge"].fillna("")))
    return pd.concat([table.reset_index(drop=True), encoded], axis=1)


@functools.lru_cache(maxsize=1)
def element_property_table() -> np.ndarray:
    """(MAX_Z + 1, len(ELEMENT_PROPERTIES)) standardised Magpie element properties; row 0 (padding) is zeros."""
    from matminer.utils.data import MagpieData
    from pymatgen.core import Element

    magpie = MagpieData()
    values = np.full((MAX_Z + 1, len(ELEMENT_PROPERTIES)), np.nan)
    for z in range(1, MAX_Z + 1):
        element = Element.from_Z(z)
        for j, name in enumerate(ELEMENT_PROPERTIES):
            values[z, j] = magpie.get_elemental_property(element, name)
    mean, std = np.nanmean(values[1:], axis=0), np.nanstd(values[1:], axis=0) + 1e-9
    table = np.nan_to_num((values - mean) / std)
    table[0] = 0.0
    return table


class FractionAttention(nn.Module):
    """Element tokens -> self-attention -> fraction-weighted attention pooling, joined with the host vector -> voltage."""

    def __init__(self, n_host: int, d_model: int, n_layers: int, n_heads: int, dropout: float):
        super().__init__()
        self.register_buffer("properties", torch.tensor(element_property_table(), dtype=torch.float32))
        self.embedding = nn.Embedding(MAX_Z + 1, 16, padding_idx=0)
        self.token = nn.Linear(self.properties.shape[1] + 16 + 3, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.gate = nn.Linear(d_model, 1)
        self.host = nn.Sequential(nn.Linear(n_host, d_model), nn.SiLU())
        self.head = nn.Sequential(nn.Linear(2 * d_model, d_model), nn.SiLU(), nn.Dropout(dropout), nn.Linear(d_model, 1))

    def forward(self, z, fractions, host):
        tokens = torch.cat([self.properties[z], self.embedding(z), fractions], dim=-1)
        padding = z == 0
        hidden = self.encoder(self.token(tokens), src_key_padding_mask=padding)
        # attention pooling weighted by the discharged fraction (Roost's soft-attention weighting)
        logits = self.gate(hidden).squeeze(-1).masked_fill(padding, -1e9)
        weights = fractions[..., 0] * torch.exp(logits - logits.max(dim=1, keepdim=True).values)
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-9)
        pooled = (weights.unsqueeze(-1) * hidden).sum(dim=1)
        return self.head(torch.cat([pooled, self.host(host)], dim=-1)).squeeze(-1)


class CompositionAttentionRegressor(RegressorMixin, BaseEstimator):
    """sklearn-shaped: X = slot columns (slot_columns(max_elements)) followed by host feature columns."""

    def __init__(self, max_elements: int = MAX_ELEMENTS, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
                 dropout: float = 0.1, epochs: int = 120, batch_size: int = 64, learning_rate: float = 2e-3,
                 weight_decay: float = 1e-4, seed: int = 0, num_threads: int = 1):
        self.max_elements, self.d_model, self.n_layers, self.n_heads = max_elements, d_model, n_layers, n_heads
        self.dropout, self.epochs, self.batch_size, self.learning_rate = dropout, epochs, batch_size, learning_rate
        self.weight_decay, self.seed, self.num_threads = weight_decay, seed, num_threads

    def _tensors(self, features: np.ndarray):
        k = self.max_elements
        features = np.asarray(features, float)
        z = features[:, :k].astype(np.int64).clip(0, MAX_Z)
        discharged, charged = features[:, k : 2 * k], features[:, 2 * k : 3 * k]
        fractions = np.stack([discharged, charged, discharged - charged], axis=-1)
        host = np.nan_to_num((features[:, 3 * k :] - self.host_mean_) / self.host_std_)
        return (torch.as_tensor(z), torch.as_tensor(fractions, dtype=torch.float32),
                torch.as_tensor(host, dtype=torch.float32))

    def fit(self, features, target):
        torch.manual_seed(self.seed)
        torch.set_num_threads(max(1, self.num_threads))
        host = np.asarray(features, float)[:, 3 * self.max_elements :]
        self.host_mean_ = np.nan_to_num(np.nanmean(host, axis=0)) if len(host) else 0.0
        self.host_std_ = np.nan_to_num(np.nanstd(host, axis=0), nan=1.0) + 1e-6
        target = np.asarray(target, float)
        self.target_mean_, self.target_std_ = float(target.mean()), float(target.std() + 1e-9)
        z, fractions, host_tensor = self._tensors(features)
        y = torch.as_tensor((target - self.target_mean_) / self.target_std_, dtype=torch.float32)
        self.module_ = FractionAttention(host_tensor.shape[1], self.d_model, self.n_layers, self.n_heads, self.dropout)
        optimizer = torch.optim.AdamW(self.module_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        steps = self.epochs * max(1, -(-len(y) // self.batch_size))
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, self.learning_rate, total_steps=steps)
        generator = torch.Generator().manual_seed(self.seed)
        self.module_.train()
        for _ in range(self.epochs):
            for batch in torch.randperm(len(y), generator=generator).split(self.batch_size):
                optimizer.zero_grad()
                loss = torch.nn.functional.l1_loss(self.module_(z[batch], fractions[batch], host_tensor[batch]), y[batch])
                loss.backward()
                optimizer.step()
                schedule.step()
        self.module_.eval()
        return self

    def predict(self, features):
        if len(features) == 0:
            return np.array([])
        z, fractions, host = self._tensors(features)
        with torch.no_grad():
            scaled = self.module_(z, fractions, host).numpy()
        return scaled * self.target_std_ + self.target_mean_
