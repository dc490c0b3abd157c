"""Measured PDFs: .gr files of PDFgetX2, PDFgetX3, PDFgetN and PDFgui -> model inputs -> top-k space groups.

A .gr file is a header followed by rows of two or more numbers: r (A), G(r) (1/A^2), and
optionally dr and dG. The headers differ by tool:

- PDFgetX3: `[DEFAULT]`, `key = value` lines (`wavelength = 0.1839`, `composition = NaCl`,
  `qmax = 25`, `mode = xray`), `#### start data`, `#S 1`, `#L r($\\AA$)  G($\\AA^{-2}$)`.
- PDFgetX2 / PDFgetN: a history of tables: `History written: ...`, `##### Run Information`,
  `key=value` lines several to a line (`numRpoints=2000     maxR=20.0 ...`, `title=PDF analysis`),
  rows of numbers inside the history (bank tables, element tables), then `#### start data`,
  `#S 1 - PDF from PDFgetN`, `#P0 ...`, `#L r G(r) dr dG(r)`.
- PDFgui exports: `History written`, `stype=X  x-ray scattering`, `qmax=25.00`, `qdamp=...`,
  `##### start data`, `#L r(A) G(r) d_r d_Gr`.

Data start: after a `#... start data` marker (any number of `#`) when the file has one, at
its first numeric row; otherwise at the first run of at least MIN_POINTS consecutive numeric
rows (numeric rows inside a history are short runs). From there on every non-comment line
must be numbers. The r grid of the file (any step, any range covering the model's 1.5..30 A)
is resampled linearly onto the model grid; a file that does not cover it is rejected with
its range in the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from assets.pdf.calculator import MODEL_GRID_A, PdfSettings, compute_pdfs, normalise_profiles
from assets.pdf.calibration import SET_LEVEL, set_members
from assets.pdf.structures import (
    Crystal,
    diamond,
    hexagonal_close_packed,
    rock_salt,
    space_group_label,
    space_group_symbol,
)
from resources.datapaths import Rejection, atomic_write_bytes

MIN_POINTS = 20  # data rows a file needs; also the shortest run of numeric rows taken for data without a marker
COVERAGE_TOLERANCE_A = 0.05  # a file may start this far above 1.5 A (its first value is held)
MIN_R_MAX_A = 15.0  # a file that ends below this is rejected: too little of the model's 1.5..30 A range

_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_START_MARKER = re.compile(r"^\s*#+\s*start\s+data\b", re.IGNORECASE)
_WAVELENGTH = re.compile(rf"\b(?:wavelength|lambda|wavelen)\s*[=:]\s*({_FLOAT})", re.IGNORECASE)
_QMAX = re.compile(rf"\bqmax\s*[=:]\s*({_FLOAT})", re.IGNORECASE)
_COMPOSITION = re.compile(r"^\s*composition[ \t]*[=:][ \t]*(\S[^#\n]*?)\s*$", re.IGNORECASE | re.MULTILINE)
_NEUTRON = re.compile(r"\bmode\s*=\s*neutron\b|\bstype\s*=\s*N\b|PDFgetN\b|^\s*prep=\w+", re.IGNORECASE | re.MULTILINE)
_XRAY = re.compile(r"\bmode\s*=\s*xray\b|\bstype\s*=\s*X\b|PDFgetX|x-?ray", re.IGNORECASE)
_ELEMENT_ROW = re.compile(rf"^\s*([A-Z][a-z]?)\s+({_FLOAT})(?:\s+{_FLOAT}){{3,}}\s*$")  # PDFgetN sample table


class GrFormatError(ValueError):
    """A .gr file that cannot be used; row is the 1-based line number when one is to blame."""

    def __init__(self, row: int | None, reason: str):
        super().__init__(reason)
        self.row = row


@dataclass
class GrFile:
    """What a .gr file holds: r (A), G (1/A^2), the header's instrument facts (None when absent)."""

    r_A: np.ndarray
    pdf: np.ndarray
    header: dict = field(default_factory=dict)  # wavelength_A, qmax_inv_A, composition, radiation, tool
    data_start_row: int = 0  # 1-based line of the first data row


def reference_crystals() -> list[Crystal]:
    """Room-temperature structures: NaCl a = 5.640 A, Si a = 5.431 A (Wyckoff, Crystal Structures,
    1963); Mg hcp a = 3.209 A, c = 5.211 A (Walker and Marezio, Acta Metall. 7, 769, 1959)."""
    return [
        rock_salt(5.640, 11, 17, "NaCl"),
        diamond(5.431, 14, "Si"),
        hexagonal_close_packed(3.209, 5.211, 12, "Mg"),
    ]


def gr_text(r_A: np.ndarray, pdf: np.ndarray, source: str, composition: str = "") -> str:
    """Our own .gr writer (PDFgetX3-like header), used only for the embedded synthetic examples."""
    header = [
        "[DEFAULT]", "version = embedded example of the pdf pipeline (synthetic)", f"source = {source}",
        "mode = xray", "wavelength = 0.1839", f"composition = {composition}", "qmax = 25.0", "",
        "#### start data", "#S 1", "#L r($\\AA$)  G($\\AA^{-2}$)",
    ]
    rows = [f"{r:.6f} {g:.6f}" for r, g in zip(r_A, pdf)]
    return "\n".join(header + rows) + "\n"


EXAMPLE_COMPOSITIONS = {"NaCl": "NaCl", "Si": "Si", "Mg": "Mg"}
EXAMPLE_SPACE_GROUPS = {"NaCl.gr": 225, "Si.gr": 227, "Mg.gr": 194}  # the embedded examples' true groups


def examples_top_k_hits(table: pd.DataFrame, k: int = 2) -> dict[str, bool]:
    """For each embedded example in a predictions table (source synthetic): is its true group in the top k?"""
    examples = table[(table["source"] == "synthetic") & table["file"].isin(list(EXAMPLE_SPACE_GROUPS))]
    return {name: bool(((rows["rank"] <= k) & (rows["space_group"] == EXAMPLE_SPACE_GROUPS[name])).any())
            for name, rows in examples.groupby("file")}


def write_embedded_examples(folder: Path, rng: np.random.Generator, noise_fraction: float = 0.03) -> list[Path]:
    """Write synthetic NaCl, Si and Mg .gr files (r 0.01..35 A, Qmax 25 1/A, Gaussian noise) into folder.

    The folder is the pipeline's examples folder (never data/raw/): they stand in for a user's
    measurements when there are none, and every export labels them source=synthetic.
    """
    r = np.arange(0.01, 35.0, 0.01)
    crystals = reference_crystals()
    pdfs = compute_pdfs(crystals, PdfSettings(r_max_A=35.0), r)
    paths = []
    for crystal, pdf in zip(crystals, pdfs):
        noisy = pdf + rng.normal(0.0, noise_fraction * np.abs(pdf).max(), pdf.shape)
        text = gr_text(r, noisy, f"computed from {crystal.structure_id}, space group {crystal.space_group}",
                       EXAMPLE_COMPOSITIONS.get(crystal.structure_id, ""))
        paths.append(atomic_write_bytes(Path(folder) / f"{crystal.structure_id}.gr", text.encode()))
    return paths


def _numbers(line: str) -> list[float] | None:
    try:
        return [float(token) for token in line.replace(",", " ").split()]
    except ValueError:
        return None


def _is_data_row(line: str) -> bool:
    values = _numbers(line)
    return values is not None and len(values) >= 2


def _skippable(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def find_data_start(lines: list[str]) -> int:
    """0-based index of the first data row (see the module docstring); raises GrFormatError when none."""
    marker = next((i for i, line in enumerate(lines) if _START_MARKER.match(line)), None)
    if marker is not None:
        for i in range(marker + 1, len(lines)):
            if not _skippable(lines[i]):
                return i
        raise GrFormatError(None, f"no data rows after the '{lines[marker].strip()}' marker on line {marker + 1}")
    run_start, run_length = None, 0
    for i, line in enumerate(lines):
        if _skippable(line):
            continue
        if _is_data_row(line):
            run_start = i if run_length == 0 else run_start
            run_length += 1
            if run_length >= MIN_POINTS:
                return run_start
        else:
            run_length = 0
    raise GrFormatError(None, f"no run of {MIN_POINTS} or more rows of numbers (r, G(r), ...) found: "
                              "expected a header followed by data rows")


def parse_header(header: str) -> dict:
    """Instrument facts from a header: wavelength_A, qmax_inv_A, composition, radiation, tool (None when absent)."""
    facts: dict = {"wavelength_A": None, "qmax_inv_A": None, "composition": None, "radiation": None, "tool": None}
    if match := _WAVELENGTH.search(header):
        facts["wavelength_A"] = float(match.group(1))
    if match := _QMAX.search(header):
        facts["qmax_inv_A"] = float(match.group(1)) or None  # PDFgui writes qmax=0 for "not applied"
    if (match := _COMPOSITION.search(header)) and match.group(1).strip():
        facts["composition"] = match.group(1).strip()
    else:
        elements = _element_table(header)
        if elements:
            facts["composition"] = "".join(f"{symbol}{count:g}" if count != 1 else symbol
                                           for symbol, count in elements)
    if _NEUTRON.search(header):
        facts["radiation"] = "neutron"
    elif _XRAY.search(header):
        facts["radiation"] = "xray"
    for tool, pattern in (("xPDFsuite", r"xPDFsuite"), ("PDFgetX3", r"pdfgetx-?3|diffpy\.pdfgetx"), ("PDFgetX2", r"PDFgetX2"),
                          ("PDFgetN", r"PDFgetN|prep=\w+"), ("PDFgui", r"PDFgui")):
        if re.search(pattern, header, re.IGNORECASE):
            facts["tool"] = tool
            break
    return facts


def _element_table(header: str) -> list[tuple[str, float]]:
    """(symbol, amount) rows of a header's sample table. The amount is the column named 'fraction(s)' in the
    table's column line when there is one (PDFgetX2: `#L symbol valence fractions z ...`), else the first
    number (PDFgetN: `Element  NumOf  Mass ...`)."""
    column = 0
    elements = []
    for line in header.splitlines():
        names = line.lstrip("#").split()
        if names and names[0].lower() in ("l", "symbol", "element"):
            names = names[1:] if names[0].lower() == "l" else names
            fraction = [i for i, name in enumerate(names[1:]) if name.lower().startswith("fraction")]
            column = fraction[0] if fraction else 0
        elif match := _ELEMENT_ROW.match(line):
            amounts = line.split()[1:]
            elements.append((match.group(1), float(amounts[column] if column < len(amounts) else amounts[0])))
    return elements


def read_gr_file(path: Path) -> GrFile:
    """A .gr file's data and header facts; raises GrFormatError naming the offending row."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise GrFormatError(None, f"cannot read the file: {error}") from error
    start = find_data_start(lines)
    rows = []
    for number, line in enumerate(lines[start:], start=start + 1):
        if _skippable(line):
            continue
        values = _numbers(line)
        if values is None or len(values) < 2:
            raise GrFormatError(number, f"expected two or more numbers (r, G(r), ...) in the data from line "
                                        f"{start + 1} on, got {line.strip()[:60]!r}")
        rows.append(values[:2])
    if len(rows) < MIN_POINTS:
        raise GrFormatError(None, f"expected at least {MIN_POINTS} data rows of r, G(r); found {len(rows)}")
    data = np.array(rows)
    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if bad.size:
        raise GrFormatError(None, f"data row {bad[0] + 1} is not finite (expected real numbers)")
    r, pdf = data[:, 0], data[:, 1]
    if np.any(np.diff(r) <= 0):
        raise GrFormatError(None, f"r must increase strictly; data row {np.flatnonzero(np.diff(r) <= 0)[0] + 2} does not")
    return GrFile(r, pdf, parse_header("\n".join(lines[:start])), start + 1)


def read_gr(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(r in A, G in 1/A^2) from a .gr file; raises GrFormatError naming the offending row."""
    gr = read_gr_file(path)
    return gr.r_A, gr.pdf


def resample_to_model_grid(r_A: np.ndarray, pdf: np.ndarray, grid_A: np.ndarray = MODEL_GRID_A,
                           min_r_max_A: float = MIN_R_MAX_A) -> tuple[np.ndarray, float]:
    """(G linearly resampled onto the model grid and normalised to [0, 1], the r_max used in A).

    A file that ends inside the grid (at min_r_max_A or beyond) is used up to its end: G is zero on
    the grid beyond it, as in the r-cut augmentation the models are trained with. Raises GrFormatError
    when the file starts above the grid or ends below min_r_max_A (within COVERAGE_TOLERANCE_A).
    """
    low, high = float(grid_A[0]), float(grid_A[-1])
    if r_A[0] > low + COVERAGE_TOLERANCE_A or r_A[-1] < min_r_max_A - COVERAGE_TOLERANCE_A:
        raise GrFormatError(None, f"r range {r_A[0]:.2f}..{r_A[-1]:.2f} A is too short: the file must start at or "
                                  f"below {low:g} A and reach at least {min_r_max_A:g} A (the model reads "
                                  f"{low:g}..{high:g} A; transform with rmax >= {high:g} for the whole range)")
    r_max_used = min(float(r_A[-1]), high)
    inside = grid_A <= r_max_used + COVERAGE_TOLERANCE_A
    resampled = np.where(inside, np.interp(grid_A, r_A, pdf), 0.0)
    return normalise_profiles(resampled[None, :])[0], r_max_used


@dataclass
class MeasuredSet:
    """Model inputs of every usable file of a folder, their header facts, the r_max each was read to
    (A), and the rejected files."""

    names: list[str]
    paths: list[str]
    inputs: np.ndarray
    headers: list[dict]
    rejections: list[Rejection]
    r_max_used_A: list[float] = field(default_factory=list)

    @classmethod
    def empty(cls) -> "MeasuredSet":
        return cls([], [], np.zeros((0, len(MODEL_GRID_A)), np.float32), [], [], [])


def read_measured_folder(folder: Path) -> MeasuredSet:
    """Every *.gr of folder (sorted) resampled onto the model grid; unusable files become rejections."""
    found = MeasuredSet.empty()
    rows = []
    for path in sorted(Path(folder).glob("*.gr")):
        try:
            gr = read_gr_file(path)
            row, r_max_used = resample_to_model_grid(gr.r_A, gr.pdf)
        except GrFormatError as error:
            found.rejections.append(Rejection(str(path), error.row, str(error)))
            continue
        found.names.append(path.name)
        found.paths.append(str(path))
        found.headers.append(gr.header)
        found.r_max_used_A.append(r_max_used)
        rows.append(row)
    found.inputs = np.array(rows, dtype=np.float32).reshape(len(rows), len(MODEL_GRID_A))
    return found


def measured_inputs(folder: Path) -> tuple[list[str], np.ndarray, list[Rejection]]:
    """(file names, model input rows, rejections) of every .gr file of folder."""
    found = read_measured_folder(folder)
    return found.names, found.inputs, found.rejections


PREDICTION_COLUMNS = ["file", "source", "rank", "space_group", "space_group_symbol", "probability", "in_set90",
                      "set90_size", "set90", "set90_note", "r_max_used_A", "radiation", "wavelength_A", "qmax_inv_A",
                      "composition", "model", "model_id", "members_first"]


def set90_description(groups: list[int], probabilities: list[float]) -> tuple[str, str]:
    """(the set as '62 Pnma 0.61, 14 P2_1/c 0.33', a note a person reads: one group, or how many it cannot tell
    apart)."""
    listed = ", ".join(f"{space_group_label(g)} {p:.2f}" for g, p in zip(groups, probabilities))
    if len(groups) == 1:
        return listed, f"one group holds {SET_LEVEL:.0%} of the probability"
    return listed, f"cannot tell {len(groups)} groups apart at {SET_LEVEL:.0%}"


def top_k_table(names: list[str], probabilities: np.ndarray, classes: list[int], k: int, model_id: str,
                headers: list[dict] | None = None, source: str = "user", r_max_used_A: list[float] | None = None,
                model: str = "", set90_threshold: float | None = None,
                members_first: np.ndarray | None = None) -> pd.DataFrame:
    """One row per file and rank: the space group as number and Hermann-Mauguin symbol, its probability,
    the r range used (1.5 A to r_max_used_A), the file's header facts (wavelength, Qmax, composition,
    radiation; empty when absent), and the model (its name and model_id) that made the prediction.

    Each file also carries its 90 % set (calibration.set_mask with the model's set90_threshold; every group of it,
    even beyond rank k): in_set90 per rank, the set's size, its groups with their probabilities, and a note that
    says when the model cannot tell groups apart. For an ensemble, members_first (n, n_members: each member's most
    probable class index) gives `members_first`, e.g. '62 Pnma, 2 P-1, 62 Pnma': whether the first answer depends
    on the training draw; empty for a single network.
    """
    k = min(k, len(classes))
    headers = headers or [{} for _ in names]
    r_max_used_A = r_max_used_A or [None for _ in names]
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    members = set_members(probabilities, classes, set90_threshold)
    firsts = ["" for _ in names] if members_first is None else \
        [", ".join(space_group_label(int(classes[column])) for column in row) for row in members_first]
    described = [set90_description(groups, [float(probabilities[row, classes.index(g)]) for g in groups])
                 for row, groups in enumerate(members)]
    records = [
        {"file": name, "source": source, "rank": rank + 1, "space_group": int(classes[column]),
         "space_group_symbol": space_group_symbol(int(classes[column])),
         "probability": float(probabilities[row, column]), "in_set90": int(classes[column]) in members[row],
         "set90_size": len(members[row]), "set90": described[row][0], "set90_note": described[row][1],
         "r_max_used_A": r_max,
         "radiation": header.get("radiation"), "wavelength_A": header.get("wavelength_A"),
         "qmax_inv_A": header.get("qmax_inv_A"), "composition": header.get("composition"), "model": model,
         "model_id": model_id, "members_first": firsts[row]}
        for row, (name, header, r_max) in enumerate(zip(names, headers, r_max_used_A))
        for rank, column in enumerate(order[row])
    ]
    return pd.DataFrame(records, columns=PREDICTION_COLUMNS)
