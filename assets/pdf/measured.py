"""Measured PDFs: PDFgetX3 .gr files -> model inputs -> top-k space groups.

A .gr file is header lines (PDFgetX3 writes `key = value` lines, `#` comments and a
`#### start data` marker) followed by rows of two or more numbers: r (A), G(r) (1/A^2),
and optionally uncertainties. The embedded default writes a few such files computed from
published structures, with noise, so the pipeline has something to predict.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from assets.pdf.calculator import MODEL_GRID_A, PdfSettings, compute_pdfs, model_input
from assets.pdf.structures import Crystal, diamond, hexagonal_close_packed, rock_salt
from resources.datapaths import Rejection, atomic_write_bytes

MIN_POINTS = 20
MIN_OVERLAP_A = 5.0  # the measured r range must cover this much of the model grid


class GrFormatError(ValueError):
    """A .gr file that cannot be used; row is the 1-based line number when one is to blame."""

    def __init__(self, row: int | None, reason: str):
        super().__init__(reason)
        self.row = row


def reference_crystals() -> list[Crystal]:
    """Room-temperature structures: NaCl a = 5.640 A, Si a = 5.431 A (Wyckoff, Crystal Structures,
    1963); Mg hcp a = 3.209 A, c = 5.211 A (Walker and Marezio, Acta Metall. 7, 769, 1959)."""
    return [
        rock_salt(5.640, 11, 17, "NaCl"),
        diamond(5.431, 14, "Si"),
        hexagonal_close_packed(3.209, 5.211, 12, "Mg"),
    ]


def gr_text(r_A: np.ndarray, pdf: np.ndarray, source: str) -> str:
    header = [
        "[DEFAULT]", "version = embedded default of the pdf pipeline", f"source = {source}",
        "dataformat = QA", "qmaxinst = 25.0", "", "#### start data", "#S 1", "#L r($\\AA$)  G($\\AA^{-2}$)",
    ]
    rows = [f"{r:.6f} {g:.6f}" for r, g in zip(r_A, pdf)]
    return "\n".join(header + rows) + "\n"


def write_embedded_measured(folder: Path, rng: np.random.Generator, noise_fraction: float = 0.03) -> list[Path]:
    """Write NaCl, Si and Mg .gr files (r 0.01..35 A, Qmax 25 1/A) with Gaussian noise."""
    r = np.arange(0.01, 35.0, 0.01)
    crystals = reference_crystals()
    pdfs = compute_pdfs(crystals, PdfSettings(r_max_A=35.0), r)
    paths = []
    for crystal, pdf in zip(crystals, pdfs):
        noisy = pdf + rng.normal(0.0, noise_fraction * np.abs(pdf).max(), pdf.shape)
        text = gr_text(r, noisy, f"computed from {crystal.structure_id}, space group {crystal.space_group}")
        paths.append(atomic_write_bytes(Path(folder) / f"{crystal.structure_id}.gr", text.encode()))
    return paths


def _numbers(line: str) -> list[float] | None:
    try:
        return [float(token) for token in line.split()]
    except ValueError:
        return None


def read_gr(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(r in A, G in 1/A^2) from a .gr file; raises GrFormatError naming the offending row."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as error:
        raise GrFormatError(None, f"cannot read the file: {error}") from error
    marker = next((i for i, line in enumerate(lines) if line.strip().startswith("#### start data")), None)
    start = marker + 1 if marker is not None else 0
    rows, data_started = [], False
    for number, line in enumerate(lines[start:], start=start + 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or (not data_started and _numbers(stripped) is None):
            continue
        values = _numbers(stripped)
        if values is None or len(values) < 2:
            raise GrFormatError(number, f"expected two or more numbers (r, G(r), ...), got {stripped[:60]!r}")
        data_started = True
        rows.append(values[:2])
    if len(rows) < MIN_POINTS:
        raise GrFormatError(None, f"expected at least {MIN_POINTS} data rows of r, G(r); found {len(rows)}")
    data = np.array(rows)
    r, pdf = data[:, 0], data[:, 1]
    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if bad.size:
        raise GrFormatError(None, f"data row {bad[0] + 1} is not finite (expected real numbers)")
    if np.any(np.diff(r) <= 0):
        raise GrFormatError(None, f"r must increase strictly; data row {np.flatnonzero(np.diff(r) <= 0)[0] + 2} does not")
    overlap = min(r.max(), MODEL_GRID_A[-1]) - max(r.min(), MODEL_GRID_A[0])
    if overlap < MIN_OVERLAP_A:
        raise GrFormatError(None, f"r range {r.min():.2f}..{r.max():.2f} A covers less than {MIN_OVERLAP_A} A "
                                  f"of the model range {MODEL_GRID_A[0]}..{MODEL_GRID_A[-1]} A")
    return r, pdf


def measured_inputs(folder: Path) -> tuple[list[str], np.ndarray, list[Rejection]]:
    """Every .gr file of folder as a model input row; files that cannot be used become rejections."""
    names, rows, rejections = [], [], []
    for path in sorted(Path(folder).glob("*.gr")):
        try:
            r, pdf = read_gr(path)
        except GrFormatError as error:
            rejections.append(Rejection(str(path), error.row, str(error)))
            continue
        names.append(path.name)
        rows.append(model_input(r, pdf))
    return names, np.array(rows, dtype=np.float32).reshape(len(rows), len(MODEL_GRID_A)), rejections


def top_k_table(names: list[str], probabilities: np.ndarray, classes: list[int], k: int, model_id: str) -> pd.DataFrame:
    """One row per file and rank: file, rank, space_group, probability, model_id."""
    k = min(k, len(classes))
    order = np.argsort(-probabilities, axis=1)[:, :k]
    records = [
        {"file": name, "rank": rank + 1, "space_group": int(classes[column]),
         "probability": float(probabilities[row, column]), "model_id": model_id}
        for row, name in enumerate(names)
        for rank, column in enumerate(order[row])
    ]
    return pd.DataFrame(records, columns=["file", "rank", "space_group", "probability", "model_id"])
