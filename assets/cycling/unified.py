"""Cycler data (Severson pickles, beep-style unified CSVs, the published Qdlin matrices) to one unified table.

One row per (cell, cycle, time step); the columns, in order:
    cell_key          str    the cell's name (pickle key, CSV value, or "<split>/cellN" for the Qdlin layout)
    cycle_number      int    cycle index as the source numbers it (Severson: 1 = first cycle)
    time              float  minutes since the cycle started; where a source has no time, the row order
                             within the cycle (0, 1, 2, ...; Qdlin layout: the index on the voltage grid)
    cycle_life        float  cycles until the cell reached 80 % of its nominal capacity (Severson's
                             definition: 0.88 Ah for the 1.1 Ah LFP/graphite cells); the regression target,
                             one value per cell; NaN when unknown (the cell is still used for pretraining)
    charge_policy     str    e.g. "5.4C(40%)-3.6C"; from a CSV's charge_policy_Q1..Q4 joined by "-"
    current           float  A or C-rate, as the source has it; negative while discharging
    voltage           float  V
    charge_capacity   float  Ah
    discharge_capacity float Ah (Qdlin layout: discharge capacity Q(V) at the row's voltage)
    temperature       float  degC
    discharge_dQdV    float  Ah/V
    batch_number      float  the source's batch, when given
    discharge_policy  str    when given
    source            str    the file, relative to data/raw/cycling ("synthetic" for the embedded cells)
    dataset           str    the folder a Qdlin-layout cell came from (train, test1, ...); "" otherwise
A signal a source lacks is NaN; `signals_present` says which are there.
Cycler files (`assets.cycling.cyclers`) add, and only where one of them was read (OPTIONAL_COLUMNS):
    step_index        float  the instrument's step number
    step_type         str    the instrument's name of the step (Md C/D/R, 'CC DChg', 'Rest', ...)
    test_time_s       float  s since the test started (restarts of a paused test joined)
    charge_energy     float  Wh since the cycle started
    discharge_energy  float  Wh since the cycle started
For those files current is in A (never a C-rate), negative while discharging, and the capacities count from
0 at each cycle's start (see cyclers' docstring for how each instrument's counters are converted).

Severson pickles hold dQdV on the Qdlin voltage grid, not per time step, so it
is not a time-step signal there. Pickles are read as data (resources.safe_pickle): a file naming
anything beyond dicts, lists, strings, bytes, numbers and numpy arrays is rejected, and nothing in it runs.

The Qdlin-matrix layout (Attia et al., J. Electrochem. Soc. 168, 090547 (2021)):
    <folder>/<split>/cellN.csv                 no header; 1000 rows (voltage linspace(3.6, 2.0, 1000))
                                               x one column per cycle (2, 3, ..., 100): Qdlin in Ah
    <folder>/cycle_lives/<split>_cycle_lives.csv  one cycle life per line, line N for cellN.csv; a split
                                               without this file is a set whose lives are unknown (predicted)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from resources.datapaths import Rejection
from resources.safe_pickle import load_data_pickle

KEYS = ["cell_key", "cycle_number"]
SYNTHETIC_SOURCE = "synthetic"  # the `source` of the embedded synthetic cells
SIGNALS = ["current", "voltage", "charge_capacity", "discharge_capacity", "temperature", "discharge_dQdV"]
CELL_COLUMNS = ["cycle_life", "charge_policy", "batch_number", "discharge_policy"]
COLUMNS = KEYS + ["time"] + CELL_COLUMNS[:2] + SIGNALS + CELL_COLUMNS[2:] + ["source", "dataset"]
OPTIONAL_COLUMNS = ["step_index", "step_type", "test_time_s", "charge_energy", "discharge_energy"]
STRING_COLUMNS = ["cell_key", "charge_policy", "discharge_policy", "source", "dataset", "step_type"]
SEVERSON_TRACES = {"t": "time", "I": "current", "V": "voltage", "Qc": "charge_capacity",
                   "Qd": "discharge_capacity", "T": "temperature"}
POLICY_STEPS = [f"charge_policy_Q{i}" for i in range(1, 5)]


def _scalar(value) -> float:
    """cycle_life as stored by Severson ([[1852.]]), a float, or missing -> NaN."""
    array = np.ravel(np.asarray(value, dtype=float)) if value is not None else np.array([])
    return float(array[0]) if array.size else float("nan")


def _severson_cycle_frame(cycle: Mapping) -> pd.DataFrame:
    """The time-step signals of one Severson cycle (ValueError when they do not line up)."""
    columns = {SEVERSON_TRACES[k]: np.ravel(np.asarray(v, dtype=float))
               for k, v in cycle.items() if k in SEVERSON_TRACES}
    if "time" not in columns or len(columns) < 2:
        raise ValueError("expected arrays 't' and at least one of V, I, Qc, Qd, T")
    lengths = {name: values.size for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"trace lengths differ: {lengths}")
    return pd.DataFrame(columns)


def _severson_cell_frame(cell: str, record, source: str) -> pd.DataFrame:
    if not isinstance(record, Mapping) or not isinstance(record.get("cycles"), Mapping):
        raise ValueError("expected a dict with 'cycles' (dict keyed by cycle number)")
    frames = []
    for key, cycle in record["cycles"].items():
        if not isinstance(cycle, Mapping):
            raise ValueError(f"cycle {key}: expected a dict of arrays")
        try:
            frames.append(_severson_cycle_frame(cycle).assign(cycle_number=int(float(key))))
        except (ValueError, TypeError, OverflowError) as error:
            raise ValueError(f"cycle {key}: {error}") from error
    if not frames:
        raise ValueError("no cycles")
    return pd.concat(frames, ignore_index=True).assign(
        cell_key=cell,
        cycle_life=_scalar(record.get("cycle_life")),
        charge_policy=str(record.get("charge_policy", "")),
        source=source,
    )


def severson_frame(batch, source: str) -> tuple[pd.DataFrame, list[Rejection]]:
    """A Severson batch dict (cell -> record) in the unified schema; bad cells are rejected."""
    if not isinstance(batch, Mapping) or not batch:
        return _empty(), [Rejection(source, None, "expected a non-empty dict keyed by cell (Severson format)")]
    frames, rejections = [], []
    for cell, record in batch.items():
        try:
            frames.append(_severson_cell_frame(str(cell), record, source))
        except (ValueError, TypeError, OverflowError) as error:
            rejections.append(Rejection(source, str(cell), str(error)))
    return _conform(frames), rejections


def read_pickle(path: Path) -> tuple[pd.DataFrame, list[Rejection]]:
    """A Severson batch pickle, read as data: a file naming any other type is rejected with that type."""
    try:
        batch = load_data_pickle(path)
    except Exception as error:  # any unreadable or refused pickle is a rejected file, not a failed run
        return _empty(), [Rejection(path.name, None, f"not a readable pickle: {type(error).__name__}: {error}")]
    return severson_frame(batch, path.name)


def read_csv(path: Path) -> tuple[pd.DataFrame, list[Rejection], str]:
    """A unified CSV; returns (frame, rejections, how time was obtained)."""
    try:
        raw = pd.read_csv(path, float_precision="round_trip")
    except Exception as error:  # malformed CSV: reject the file, go on with the rest
        return _empty(), [Rejection(path.name, None, f"not a readable CSV: {error}")], ""
    missing = [c for c in KEYS if c not in raw.columns]
    if missing or not any(s in raw.columns for s in SIGNALS):
        reason = f"expected columns {KEYS} and at least one of {SIGNALS}; missing {missing or SIGNALS}"
        return _empty(), [Rejection(path.name, None, reason)], ""
    cycle_number = pd.to_numeric(raw["cycle_number"], errors="coerce")
    bad_rows = ~np.isfinite(cycle_number) | raw["cell_key"].isna()
    rejections = [Rejection(path.name, int(i) + 2, "cell_key empty or cycle_number not a finite number")
                  for i in np.flatnonzero(bad_rows)]  # +2: header line, 1-based lines
    frame = raw.loc[~bad_rows].assign(cycle_number=cycle_number[~bad_rows].astype(int), source=path.name)
    frame["cell_key"] = frame["cell_key"].astype(str)
    time_origin = "column 'time'"
    if "time" not in frame.columns:
        frame["time"] = frame.groupby(KEYS).cumcount().astype(float)
        time_origin = "row order within the cycle"
    if "charge_policy" not in frame.columns and all(c in frame.columns for c in POLICY_STEPS):
        frame["charge_policy"] = frame[POLICY_STEPS].astype(str).agg("-".join, axis=1)
    return _conform([frame]), rejections, time_origin


def raw_files(folder: Path) -> list[Path]:
    """Every file at the top level of a drop folder (pickles, unified CSVs, cycler files, sidecars and files no
    reader knows, which are then rejected by name, never skipped), then the Qdlin-layout cell files of its
    split folders (`<split>/cellN.csv`), in name order."""
    folder = Path(folder)
    top = sorted(p for p in folder.glob("*") if p.is_file())
    return top + [path for split in qdlin_splits(folder) for path in qdlin_cell_files(folder / split)]


def _is_unified_csv(path: Path) -> bool:
    """A CSV whose first line names cell_key (our unified layout)."""
    with open(path, "rb") as handle:
        first = handle.readline(1 << 16).decode("utf-8-sig", errors="replace")
    return "cell_key" in [name.strip().strip('"') for name in first.split(",")]


def read_cycler(path: Path, log=None) -> tuple[pd.DataFrame, list[Rejection], str]:
    """A file that is neither a pickle nor a Qdlin cell: a unified CSV, a cycler file, a sidecar (no rows, no
    rejection: it belongs to a data file beside it) or a file no reader knows (rejected by name)."""
    from assets.cycling import cyclers

    path = Path(path)
    if path.suffix.lower() == ".csv" and _is_unified_csv(path):
        return read_csv(path)
    sidecar = cyclers.SIDECAR.fullmatch(path.name)
    if sidecar:
        target = cyclers.sidecar_target(path)
        if target is not None:
            return _empty(), [], f"sidecar of {target.name}"
        stem = sidecar.group("stem")
        return _empty(), [Rejection(path.name, None, f"metadata sidecar without its data file ({stem}.csv or "
                                                      f"{stem}.res) in the folder")], ""
    key = cyclers.detect_format(path)
    if key is None and path.suffix.lower() == ".csv":
        return read_csv(path)  # says which unified columns are missing
    try:
        rows = cyclers.read_cycler_file(path, key, log=log)
    except cyclers.CyclerFileError as error:
        instrument = cyclers.FORMATS[key].instrument + " " if key in cyclers.FORMATS else ""
        return _empty(), [Rejection(path.name, None, f"{instrument}{error}")], ""
    notes = "; ".join(f"{name}: {note}" for name, note in rows.notes.items())
    return rows.frame, [], notes  # already in COLUMNS + OPTIONAL_COLUMNS order and types


def read_files(paths: list[Path], qdlin_voltage_stride: int = 1, root: Path | None = None,
               log=None) -> tuple[list[pd.DataFrame], list[Rejection], dict[str, str]]:
    """Each file in the unified schema; also rejections and, per CSV or cycler file, where its time came from
    (for cycler files also the current's sign and the capacity columns used; "sidecar of X" for sidecars).

    Files named `<split>/cellN.csv` below `root` (the drop folder) are read as Qdlin matrices, with their
    cycle lives from `root/cycle_lives/<split>_cycle_lives.csv`. A frame's `source` is the path relative
    to `root`; rejections name the full path (so the quarantine can hash the file's content).
    """
    from resources.progress import Progress

    frames, rejections, time_origins = [], [], {}
    lives: dict[str, tuple[dict[int, float], list[Rejection]]] = {}
    progress = Progress("cycling files read", len(paths), log, unit="files", every_s=5.0) if log else None
    for done, path in enumerate(paths):
        if progress and done:
            progress.update(done)
        path = Path(path)
        label = _label(path, root)
        if root is not None and path.parent != Path(root) and QDLIN_CELL.fullmatch(path.name):
            split = path.parent.name
            if split not in lives:
                lives[split] = read_cycle_lives(Path(root), split)
                rejections += lives[split][1]
            number = int(QDLIN_CELL.fullmatch(path.name).group(1))
            frame, rejected = read_qdlin_cell(path, split, lives[split][0].get(number, float("nan")),
                                              voltage_stride=qdlin_voltage_stride)
            time_origins[label] = "index on the Qdlin voltage grid"
        elif path.suffix.lower() in (".pkl", ".pickle"):
            frame, rejected = read_pickle(path)
        else:
            frame, rejected, time_origins[label] = read_cycler(path, log)
        frames.append(frame.assign(source=label) if len(frame) else frame)
        rejections += [Rejection(str(path), r.row, r.reason) for r in rejected]
    return frames, rejections, time_origins


FILE_TABLE_COLUMNS = ["file", "instrument", "status", "cycles", "reason"]


def _instrument(path: Path, label: str, note: str) -> str:
    from assets.cycling import cyclers

    if path.suffix.lower() in (".pkl", ".pickle"):
        return "Severson pickle"
    if note == "index on the Qdlin voltage grid":
        return "Qdlin matrix"
    if note.startswith("sidecar of"):
        return "metadata sidecar"
    key = re.search(r"format: (\w+)", note)
    if key:
        return cyclers.FORMATS[key.group(1)].instrument
    if path.suffix.lower() == ".csv" and path.is_file() and _is_unified_csv(path):
        return "unified CSV"
    detected = cyclers.detect_format(path) if path.is_file() else None
    return cyclers.FORMATS[detected].instrument if detected else "unknown"


def files_table(paths: list[Path], root: Path | None, table: pd.DataFrame, rejections: list[Rejection],
                notes: dict[str, str]) -> pd.DataFrame:
    """What became of every file read: FILE_TABLE_COLUMNS, status read | sidecar | rejected.

    `table` is the unified table (cycles counted per file), `rejections` name full paths (read_files) or
    labels (unify), `notes` is read_files' third value. A file whose every cell was rejected later (too few
    cycles, a duplicate key) is rejected with those reasons."""
    cycles = table.groupby(["source", "cell_key"], sort=False)["cycle_number"].nunique().groupby(level=0).sum()
    whole: dict[str, list[str]] = {}  # file, cell or line rejections
    cycles_rejected: dict[str, list[str]] = {}  # single cycles (the cell goes on)
    for rejection in rejections:
        source = rejection.source
        label = _label(Path(source), root) if Path(source).is_absolute() else source
        if isinstance(rejection.row, str) and "/cycle " in rejection.row:
            cycles_rejected.setdefault(label, []).append(f"{rejection.row}: {rejection.reason}")
        else:
            whole.setdefault(label, []).append(rejection.reason)
    rows = []
    for path in paths:
        path = Path(path)
        label = _label(path, root)
        note = notes.get(label, "")
        n_cycles = int(cycles.get(label, 0))
        if note.startswith("sidecar of"):
            status, reason = "sidecar", note
        elif n_cycles == 0:  # every cycle rejected names the first few
            status, reason = "rejected", "; ".join((whole.get(label, []) + cycles_rejected.get(label, []))[:5]
                                                   or ["no valid cycles"])
        else:
            status, reason = "read", "; ".join(whole.get(label, []))
        rows.append({"file": label, "instrument": _instrument(path, label, note), "status": status,
                     "cycles": n_cycles, "reason": reason})
    return pd.DataFrame(rows, columns=FILE_TABLE_COLUMNS)


def _label(path: Path, root: Path | None) -> str:
    try:
        return Path(path).relative_to(root).as_posix() if root is not None else Path(path).name
    except ValueError:
        return Path(path).name


# ---- the published Qdlin-matrix layout (Attia et al. 2021) --------------------------------------------------

QDLIN_CELL = re.compile(r"cell(\d+)\.csv", re.IGNORECASE)
QDLIN_POINTS = 1000
QDLIN_FIRST_CYCLE = 2
LIVES_FOLDER = "cycle_lives"


def qdlin_voltage_grid() -> np.ndarray:
    """The voltage of each Qdlin row (V): linspace(3.6, 2.0, 1000)."""
    return np.linspace(3.6, 2.0, QDLIN_POINTS)


def qdlin_splits(folder: Path) -> list[str]:
    """Names of the sub-folders of `folder` that hold cellN.csv files (train, test1, ...), in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.is_dir() and p.name != LIVES_FOLDER and qdlin_cell_files(p))


def qdlin_cell_files(split_folder: Path) -> list[Path]:
    """cellN.csv files of one split folder, by N."""
    files = [p for p in Path(split_folder).iterdir() if p.is_file() and QDLIN_CELL.fullmatch(p.name)]
    return sorted(files, key=lambda p: int(QDLIN_CELL.fullmatch(p.name).group(1)))


def read_cycle_lives(folder: Path, split: str) -> tuple[dict[int, float], list[Rejection]]:
    """{N: cycle life} from `folder/cycle_lives/<split>_cycle_lives.csv` (line N for cellN.csv).

    A missing file means the set's lives are unknown (a set to predict, not to score): no life and no
    rejection. A line that is not a positive number is a rejection; that cell keeps a NaN life.
    """
    path = Path(folder) / LIVES_FOLDER / f"{split}_cycle_lives.csv"
    if not path.is_file():
        return {}, []
    lives, rejections = {}, []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        text = line.strip().strip(",").strip()
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if np.isfinite(value) and value > 0:
            lives[number] = value
        elif text or number == 1:
            rejections.append(Rejection(str(path), number, f"cycle life {text!r} is not a positive number"))
    return lives, rejections


def read_qdlin_cell(path: Path, split: str, cycle_life: float, first_cycle: int = QDLIN_FIRST_CYCLE,
                    voltage_stride: int = 1) -> tuple[pd.DataFrame, list[Rejection]]:
    """One Qdlin matrix (1000 voltage rows x cycles first_cycle, first_cycle+1, ...) in the unified schema.

    Rows are the voltage grid linspace(3.6, 2.0, 1000); discharge_capacity is Qdlin (Ah); time is the
    grid index; every `voltage_stride`-th grid point is kept (1: all). A file that is not a numeric
    1000-row matrix is rejected whole; a cycle column with NaN is rejected later by `unify`.
    """
    path = Path(path)
    name = path.name
    try:
        matrix = pd.read_csv(path, header=None, dtype=float, skip_blank_lines=True).to_numpy()
    except Exception as error:  # text in a number cell, ragged rows, empty file: reject the file
        return _empty(), [Rejection(name, None, f"not a numeric Qdlin matrix: {type(error).__name__}: "
                                                 f"{str(error).splitlines()[0] if str(error) else ''}")]
    if matrix.ndim != 2 or matrix.shape[0] != QDLIN_POINTS:
        return _empty(), [Rejection(name, None, f"expected {QDLIN_POINTS} rows (voltage linspace(3.6, 2.0, "
                                                 f"{QDLIN_POINTS})) x one column per cycle, found "
                                                 f"{matrix.shape[0]} rows")]
    rows = np.arange(0, QDLIN_POINTS, max(int(voltage_stride), 1))
    matrix = matrix[rows]
    n_points, n_cycles = matrix.shape
    frame = pd.DataFrame({
        "cell_key": f"{split}/{path.stem}",
        "cycle_number": np.repeat(np.arange(first_cycle, first_cycle + n_cycles), n_points),
        "time": np.tile(rows.astype(float), n_cycles),
        "cycle_life": cycle_life,
        "voltage": np.tile(qdlin_voltage_grid()[rows], n_cycles),
        "discharge_capacity": matrix.T.ravel(),
        "source": name,
        "dataset": split,
    })
    return _conform([frame]), []


def _empty() -> pd.DataFrame:
    return _conform([])


def _conform(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate and coerce to the unified columns and types."""
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    for column in COLUMNS:
        if column not in frame.columns:
            frame[column] = np.nan
    extras = [c for c in OPTIONAL_COLUMNS if c in frame.columns]  # only where a cycler file brought them
    frame = frame[COLUMNS + extras].copy()
    for column in ["time", "cycle_life", "batch_number"] + SIGNALS + [c for c in extras if c != "step_type"]:
        if frame[column].dtype != np.float64:  # already-float columns (most, on large tables) are left as they are
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in [c for c in STRING_COLUMNS if c in frame.columns]:
        if pd.api.types.infer_dtype(frame[column], skipna=False) != "string":  # a C-level scan, no copy
            frame[column] = frame[column].fillna("").astype(str)
    if frame["cycle_number"].dtype != np.int64:
        frame["cycle_number"] = frame["cycle_number"].astype(int)
    return frame


def reject_bad_cycles(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Rejection]]:
    """Drop cycles with NaN time or signals, or time going backwards; one rejection per cycle.

    A signal that is NaN over a whole cycle is absent from that source, not bad.
    """
    present = signals_present(frame)
    # One factorisation of (source, cell, cycle); every per-cycle test then groups by an integer.
    group = frame.groupby(["source", "cell_key", "cycle_number"], sort=False).ngroup().to_numpy()
    missing = frame[present].isna().groupby(group)
    problems = pd.DataFrame({
        "time has NaN": frame["time"].isna().groupby(group).any(),
        "time is not monotonic (expected non-decreasing within a cycle)":
            (frame["time"].groupby(group).diff() < 0).groupby(group).any(),
    })
    partly_missing = missing.any() & ~missing.all()
    for signal in present:
        problems[f"NaN in {signal}"] = partly_missing[signal]
    bad = problems.loc[problems.any(axis=1)]
    if bad.empty:
        return frame.reset_index(drop=True), []
    first_row = pd.Series(np.arange(len(frame))).groupby(group).first()
    keys = frame.iloc[first_row.loc[bad.index].to_numpy()][["source", "cell_key", "cycle_number"]]
    rejections = [
        Rejection(source, f"{cell}/cycle {cycle}", "; ".join(bad.columns[flags]))
        for (source, cell, cycle), flags in zip(keys.itertuples(index=False), bad.to_numpy())
    ]
    keep = ~np.isin(group, bad.index.to_numpy())
    return frame.loc[keep].reset_index(drop=True), rejections


def reject_short_and_duplicate_cells(frame: pd.DataFrame, min_cycles: int) -> tuple[pd.DataFrame, list[Rejection]]:
    """Cells with fewer than min_cycles cycles, and a cell key a second source repeats, are rejected."""
    cells = frame.groupby(["cell_key", "source"], sort=False)["cycle_number"].nunique().reset_index()
    rejections, drop = [], []
    first_source: dict[str, str] = {}
    for cell, source, n_cycles in cells.itertuples(index=False):
        if cell in first_source:
            rejections.append(Rejection(source, cell, f"cell key already read from {first_source[cell]}"))
        elif n_cycles < min_cycles:
            rejections.append(Rejection(source, cell, f"{n_cycles} valid cycles, expected at least {min_cycles}"))
        else:
            first_source[cell] = source
            continue
        drop.append((cell, source))
    keep = ~pd.MultiIndex.from_frame(frame[["cell_key", "source"]]).isin(drop)
    return frame.loc[keep].reset_index(drop=True), rejections


def smooth_charge_capacity(frame: pd.DataFrame, window: int) -> pd.DataFrame:
    """Centred rolling mean of charge_capacity within each cycle (window in time steps; <2: off)."""
    if window < 2:
        return frame
    smoothed = frame.groupby(["source", "cell_key", "cycle_number"])["charge_capacity"].transform(
        lambda s: s.rolling(window, center=True, min_periods=1).mean()
    )
    return frame.assign(charge_capacity=smoothed)


def cut_time(frame: pd.DataFrame, cutoff_min: float | None) -> pd.DataFrame:
    """Keep time steps within cutoff_min of their cycle's first time step (None: keep all)."""
    if cutoff_min is None:
        return frame
    start = frame.groupby(["source", "cell_key", "cycle_number"])["time"].transform("min")
    return frame.loc[frame["time"] - start <= cutoff_min].reset_index(drop=True)


def unify(frames: list[pd.DataFrame], min_cycles: int, smoothing_window: int = 0,
          time_cutoff_min: float | None = None) -> tuple[pd.DataFrame, list[Rejection]]:
    """Validated, sorted unified table from per-source frames."""
    frame = _conform(frames)
    frame, cycle_rejections = reject_bad_cycles(frame)
    frame = cut_time(smooth_charge_capacity(frame, smoothing_window), time_cutoff_min)
    frame, cell_rejections = reject_short_and_duplicate_cells(frame, min_cycles)
    frame = frame.sort_values(["cell_key", "cycle_number", "time"], kind="stable").reset_index(drop=True)
    return frame, cycle_rejections + cell_rejections


def signals_present(frame: pd.DataFrame) -> list[str]:
    return [s for s in SIGNALS if frame[s].notna().any()]


def rejected_cell_share(frame: pd.DataFrame, rejections: list[Rejection]) -> float:
    """Rejected whole files and cells over (those + accepted cells); single rejected cycles or CSV
    lines are not counted (their cell goes on)."""
    whole = [r for r in rejections if r.row is None or (isinstance(r.row, str) and "/cycle " not in r.row)]
    accepted = frame[["source", "cell_key"]].drop_duplicates().shape[0]
    return len(whole) / (accepted + len(whole)) if whole else 0.0


def user_rejections(rejections: list[Rejection], folder: Path) -> tuple[list[Rejection], list[Rejection]]:
    """(rejections of the user's files, with full paths so the quarantine can hash them; those of the
    synthetic cells, which are not the user's records)."""
    user, synthetic = [], []
    for rejection in rejections:
        if rejection.source == SYNTHETIC_SOURCE:
            synthetic.append(rejection)
        elif Path(rejection.source).is_absolute():
            user.append(rejection)
        else:  # `unify` names a file by its path relative to the drop folder
            user.append(Rejection(str(Path(folder) / rejection.source), rejection.row, rejection.reason))
    return user, synthetic


def accepted_cells_by_file(table: pd.DataFrame, paths: list[Path], folder: Path) -> dict[str, int]:
    """{full path: cells of that file in the unified table} for every user file read, 0 included.

    A cell is the record the rejected-share check counts (a rejected CSV line or cycle counts as one more)."""
    cells = table.groupby("source")["cell_key"].nunique()
    return {str(path): int(cells.get(_label(Path(path), Path(folder)), 0)) for path in paths}
