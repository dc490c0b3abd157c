"""tsfresh extraction time: the stored selected settings versus the full efficient set.

Spectra of the nine classes are simulated and interpolated as in the pipeline; the
selection (tsfresh relevance on a stratified training split, best `--max-features`
kept, as `eis_features` does) is fitted on features of the full efficient set, and both
settings are then timed on the same spectra, in process (n_jobs=0) by default. Both sides are
warmed up first (one untimed extraction of a few spectra each) and timed best of `--repeats`,
so neither pays for imports or first-call caches.

    python -m benchmarks.eis_features [--per-class 15] [--max-features 40] [--n-jobs 0]
"""

import argparse
import time
import warnings

import numpy as np


def _simulated_on_grid(per_class: int):
    from assets.eis.features import GridSettings, interpolate_table
    from assets.eis.formats import parse_challenge_frame, spectra_table
    from assets.eis.simulate import SimulationSettings, as_challenge_frame, simulate_all

    frame = as_challenge_frame(simulate_all(SimulationSettings(spectra_per_class=per_class), np.random.default_rng(0)))
    spectra, _ = parse_challenge_frame(frame, "benchmark", "rad_s", labelled=True)
    return interpolate_table(spectra_table(spectra), GridSettings().omega_rad_s())


def _best_of(repeats: int, run):
    best, value = float("inf"), None
    for _ in range(max(repeats, 1)):
        started = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - started)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=15)
    parser.add_argument("--max-features", type=int, default=40)
    parser.add_argument("--n-jobs", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from assets.eis import features
    from assets.eis.models import stratified_split

    kept, z_on_grid = _simulated_on_grid(args.per_class)
    ids, labels = kept["spectrum_id"].tolist(), kept["circuit"].tolist()
    features.extract(ids[:5], z_on_grid[:5], args.n_jobs, preset="efficient")  # warm-up, untimed
    full_s, full = _best_of(args.repeats, lambda: features.extract(ids, z_on_grid, args.n_jobs, preset="efficient"))
    split = stratified_split(ids, labels, 0.25, seed=0)
    train = (split["split"] == "train").to_numpy()
    columns, n_relevant = features.select_relevant(
        full[train], list(np.array(labels)[train]), args.n_jobs, fdr_level=0.05, max_features=args.max_features
    )
    settings = features.settings_for_columns(columns)
    features.extract(ids[:5], z_on_grid[:5], args.n_jobs, kind_to_fc_parameters=settings)  # warm-up, untimed
    selected_s, selected = _best_of(args.repeats, lambda: features.extract(ids, z_on_grid, args.n_jobs, kind_to_fc_parameters=settings))
    same = np.allclose(selected[columns].to_numpy(), full[columns].to_numpy(), equal_nan=True)
    print(f"spectra: {len(ids)}")
    print(f"features_full_efficient: {full.shape[1]}")
    print(f"features_relevant_on_train: {n_relevant}")
    print(f"features_selected: {selected.shape[1]}")
    print(f"selected_values_identical: {same}")
    print(f"timing: best of {args.repeats} after an untimed warm-up, both sides on the same {len(ids)} spectra")
    print(f"full_efficient_s: {full_s:.2f}")
    print(f"selected_settings_s: {selected_s:.2f}")
    print(f"speedup_selected_vs_full: {full_s / selected_s:.1f}")


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "eis_features"))
