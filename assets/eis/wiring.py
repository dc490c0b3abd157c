"""What the eis pipeline's Dagster wiring modules share: the group name, the user's conventions, where unlabelled
spectra come from, worker and thread counts, and the cached circuit evidence of a set of spectra."""

from typing import Literal

import dagster as dg
import numpy as np
import pandas as pd

from resources.compute import ComputeResource
from resources.datapaths import cache_dir, examples_dir, raw_dir

PIPELINE = "eis"
SIMULATED_SOURCE = "synthetic"  # source of every simulated spectrum in tables and exports
SIMULATED_EXPORT = "eis_simulated_spectra.csv"
UNLABELLED_EXAMPLES_FILE = "unlabelled_examples.csv"
FreqUnitOption = Literal["hz", "rad_s"]


def unlabelled_dir():
    return raw_dir(PIPELINE) / "unlabelled"


def examples_file():
    return examples_dir(PIPELINE) / UNLABELLED_EXAMPLES_FILE


class ConventionsConfig(dg.Config):
    """Per-source conventions of the user's files; the defaults are the challenge data's."""

    freq_unit: FreqUnitOption = "rad_s"  # unit of `freq` in challenge-format CSVs
    table_freq_unit: FreqUnitOption = "hz"  # unit of a generic table's frequency column when its header names none
    warburg_exponent_scale: float = 6.5  # challenge files store Rs_Ws W1_p = exponent x 6.5; 1.0 = the exponent itself

    def conventions(self):
        from assets.eis.formats import SourceConventions

        return SourceConventions(self.freq_unit, self.table_freq_unit, self.warburg_exponent_scale)


def unlabelled_spectra(conventions):
    """(user spectra table, user rejections, user files read, whether the embedded examples were used).

    User files: everything under raw/eis/unlabelled/ plus generic tables and instrument files anywhere
    under raw/eis/. Without any user file, the embedded synthetic examples (examples/eis/) stand in,
    with source "synthetic"."""
    from assets.eis import formats

    files = formats.unlabelled_files(unlabelled_dir(), raw_dir(PIPELINE))
    if files:
        spectra, rejections = formats.read_unlabelled_folder(unlabelled_dir(), conventions, raw_dir(PIPELINE))
        return formats.spectra_table(spectra), rejections, files, False
    if not examples_file().exists():
        return formats.spectra_table([]), [], [], False
    frame = pd.read_csv(examples_file(), dtype=str, keep_default_na=False)
    spectra, _ = formats.parse_challenge_frame(frame, SIMULATED_SOURCE, "rad_s", labelled=False)
    return formats.spectra_table(spectra, origin="synthetic"), [], [], True


# tsfresh runs in process (0 workers): its worker pool forks, and forking a process in which
# torch or TensorFlow already started threads (the in-process demo, the fitting step) can deadlock.
TSFRESH_WORKERS = 0


def xgboost_threads(compute: ComputeResource) -> int:
    # One thread unless asked: eis_job trains two models at once, and OpenMP threads that
    # spin-wait on an oversubscribed small machine made a 8 s fit take 3 minutes.
    return max(compute.num_threads, 1)


def evidence_of(ids: list[str], spectra: pd.DataFrame, compute: ComputeResource, random_starts: int) -> pd.DataFrame:
    """Circuit evidence of these spectra (rows as ids), from their measured points in `spectra` (cached)."""
    from assets.eis.evidence import circuit_evidence

    raw = spectra.set_index("spectrum_id").loc[ids]
    impedances = [np.asarray(a) + 1j * np.asarray(b) for a, b in zip(raw["z_real"], raw["z_imag"])]
    return circuit_evidence([np.asarray(o) for o in raw["omega_rad_s"]], impedances, compute.torch_device(), random_starts, cache_dir(PIPELINE) / "evidence")
