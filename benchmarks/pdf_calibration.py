"""Calibration of a saved compact model on regenerated profiles: temperature, ECE, the 90 % sets.

    python -m benchmarks.pdf_calibration [--model shipped|FOLDER] [--parents N] [--write]

A saved model's validation profiles do not travel with it, so they are regenerated: the card's run config
names the generator (space groups, atoms, species, variants, seed) and the augmentation of its profiles;
the training run drew parents 0..structures_per_group-1 of each group, and the generator is seeded per
(seed, group, index), so parents from structures_per_group on are ones the model never saw. The first N
per group calibrate (temperature scaling, then the split-conformal threshold of the 90 % sets), the next N
score: top-1, top-2, ECE before and after, and the 90 % sets' coverage and mean size. --write records the
temperature, the set threshold, the parents they were fitted on and this command in the card (card.json beside
the weights; the weights are not touched). Generated parents are
cached under the data root (data/cache/pdf/structures), so a rerun skips the generation.
Last line: the ECE of the calibrated probabilities on the scoring parents.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

SHIPPED = "shipped"


def run_configs(card: dict):
    """(StructuresConfig, ProfilesConfig, seed) of the run that trained the model (the pipeline's defaults for
    every setting its run config leaves out)."""
    from assets.pdf import defs as pdf_defs

    run_config = card["reproduce"]["run_config"]
    ops = run_config.get("ops", {})
    structures_config = pdf_defs.StructuresConfig(**ops.get("pdf_structures", {}).get("config", {}))
    profiles_config = pdf_defs.ProfilesConfig(**ops.get("pdf_profiles", {}).get("config", {}))
    seed = int(run_config.get("resources", {}).get("compute", {}).get("config", {}).get("seed", 0))
    return structures_config, profiles_config, seed


def regenerated_profiles(card: dict, first_index: int, per_group: int, log=print) -> dict:
    """Profiles (pdf_profiles layout) of parents first_index.. (per_group of each group) and their variants,
    generated and augmented as the card's training run did."""
    from assets.pdf import calibration, profiles, structures, variants
    from assets.pdf import defs as pdf_defs
    from resources.datapaths import cache_dir

    structures_config, profiles_config, seed = run_configs(card)
    tasks = calibration.fresh_parent_tasks(
        structures_config.space_groups, first_index, per_group, structures_config.elements,
        structures_config.max_atoms, structures_config.max_species, seed, structures_config.variants_per_structure,
        structures_config.variant_strain, structures_config.variant_angle_deg)
    folder = cache_dir("pdf") / "structures"
    found, missing = structures.cached_chunks(folder, tasks)
    started = time.perf_counter()
    for number, i in enumerate(missing, start=1):
        found[i] = variants.generate_family_chunk(tasks[i])
        structures.cache_chunk(folder, tasks[i], found[i])
        log(f"generated task {number} of {len(missing)} ({time.perf_counter() - started:.0f} s)")
    crystals = [crystal for i in sorted(found) for crystal in found[i]]
    # a stream of its own per index range, so calibration and scoring profiles draw independent conditions
    rng = np.random.default_rng([seed, 1, first_index])
    return profiles.profile_set(crystals, pdf_defs.pdf_settings_from(profiles_config),
                                pdf_defs.augmentation_from(profiles_config), rng)


def class_index(profile_set: dict, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(profiles, class indices) of the rows whose group is one of the model's classes."""
    keep = np.isin(profile_set["space_group"], classes)
    return profile_set["profiles"][keep], np.searchsorted(classes, profile_set["space_group"][keep])


def score(logits: np.ndarray, true_index: np.ndarray, temperature: float, threshold: float | None) -> dict:
    """top1, top2, ece (raw softmax and calibrated), set90 coverage and mean size of the calibrated sets (threshold:
    the model's conformal set threshold; None: top-mass sets)."""
    from assets.pdf import calibration, classifiers
    from resources.conformal import tempered_softmax

    raw, calibrated = tempered_softmax(logits), tempered_softmax(logits, temperature)
    return {"top1": classifiers.top_k_accuracy(calibrated, true_index, 1),
            "top2": classifiers.top_k_accuracy(calibrated, true_index, 2),
            "ece_raw": calibration.set_scores(raw, true_index)["ece"],
            **calibration.set_scores(calibrated, true_index, threshold)}


def score_on_fresh_parents(bundle: dict, parents: int, temperature: float, threshold: float | None,
                           log=print) -> dict:
    """score() of a saved model on the scoring parents: the `parents` per group after its calibration parents."""
    from assets.pdf import compact

    card = bundle["card"]
    first = run_configs(card)[0].structures_per_group + parents
    test_x, test_y = class_index(regenerated_profiles(card, first, parents, log), bundle["classes"])
    return {**score(compact.compact_logits(bundle["model"], test_x), test_y, temperature, threshold),
            "n_rows": len(test_y)}


def calibrate_model(folder: Path, parents: int, log=print) -> tuple[dict, dict, dict]:
    """(bundle, calibration record for the card, scores on the scoring parents) of the model in folder."""
    from assets.pdf import calibration, compact

    bundle = compact.load_model_bundle(folder)
    card = bundle["card"]
    first = run_configs(card)[0].structures_per_group
    fit_x, fit_y = class_index(regenerated_profiles(card, first, parents, log), bundle["classes"])
    fitted = calibration.calibrate(compact.compact_logits(bundle["model"], fit_x), fit_y)
    scores = score_on_fresh_parents(bundle, parents, fitted["temperature"], fitted["set90_threshold"], log)
    record = {**fitted, "fitted_on": f"regenerated profiles of parents {first}..{first + parents - 1} of each group "
                                     "(never drawn by the training run; its generator, augmentation and seed)",
              "parents_per_group": parents,
              "scored_on": f"regenerated parents {first + parents}..{first + 2 * parents - 1} of each group",
              "n_scored": scores["n_rows"], "scores": scores,
              "calibrated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return bundle, record, scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=SHIPPED, help="shipped (default) or a saved compact model folder")
    parser.add_argument("--parents", type=int, default=100, help="parents per group to calibrate on (and to score)")
    parser.add_argument("--write", action="store_true", help="record the fitted temperature in the model's card")
    args = parser.parse_args(argv)
    from assets.pdf import compact

    folder = compact.SHIPPED_DIR if args.model == SHIPPED else Path(args.model)
    if not (folder / compact.CARD_NAME).is_file():
        print(f"--model {args.model}: no {compact.CARD_NAME} in {folder}", file=sys.stderr)
        return 2
    bundle, record, scores = calibrate_model(folder, args.parents, log=lambda line: print(line, file=sys.stderr))
    print(f"model_id: {bundle['model_id']}")
    print(f"calibration_rows: {record['n_rows']}")
    print(f"scored_rows: {record['n_scored']}")
    print(f"temperature: {record['temperature']:.4f}")
    print(f"set90_threshold: {record['set90_threshold']:.4f}")
    print(f"calibration_nll_raw: {record['nll_raw']:.4f}")
    print(f"calibration_nll_calibrated: {record['nll_calibrated']:.4f}")
    for key in ("top1", "top2", "set90_coverage", "set90_mean_size", "ece_raw"):
        print(f"generated_test_{key}: {scores[key]:.4f}")
    if args.write:
        command = f"./dev.sh python -m benchmarks.pdf_calibration --model {args.model} --parents {args.parents} --write"
        card = {**bundle["card"], "calibration": {**record, "command": command}}
        (folder / compact.CARD_NAME).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
        print(f"card_written: {os.path.relpath(folder / compact.CARD_NAME)}")
    print(f"generated_test_ece: {scores['ece']:.4f}")
    return 0


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "pdf_calibration"))
