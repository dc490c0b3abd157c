"""Spread over training seeds on a small configuration: is the calibration (and the accuracy) robust to the draw?

    python -m benchmarks.pdf_seeds [--model shipped|FOLDER] [--parents N] [--seeds K] [--epochs E] [--data DIR]
                                   [--prototypes M [--train-prototypes]]

The compact model is trained K times (seeds 0..K-1) through the pipeline's own training (`train_compact_cnn`, the
card's settings with E epochs) on the calibration parents of `benchmarks.pdf_calibration` (the N parents per
group after the card's run, regenerated with its generator and augmentation; cached in the data root): split
by parent, stratified by group (64 % train, the rest validation, where each seed's temperature is fitted). Each
model is scored on the scoring parents (the next N per group, the shipped model's calibration check), and with
--data on the labelled measured files of DIR (`measured_labels.csv` in or beside it). Prints per seed and
then mean, standard deviation and range over the seeds of top-1, top-2, top-6, ECE (raw and calibrated) and the 90 %
sets, and the same for the ensemble of the K models (mean of their calibrated probabilities).
With --prototypes M, about M crystals per group of real structure types (assets/pdf/prototypes.py: AFLOW
prototypes and pyxtal's CIFs, decorated) are drawn with the card's generator settings, and their types split:
a quarter of each group's types (at least one where a group has two or more) are held out, and their crystals
are a third scoring set, `prototypes` (real structure types the model never saw in any decoration).
--train-prototypes adds the other types' crystals to training (not to validation, so both arms calibrate on
the same rows); without it the same held-out set is scored, which makes it the baseline arm.
Last line: the spread (max - min) of the calibrated ECE over the seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks import pdf_calibration

FIGURES = ("top1", "top2", "top6", "ece_raw", "ece", "set90_coverage", "set90_mean_size")


def parent_split(ids: np.ndarray, groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of profiles: parents split 64 / 36, stratified by group; variants go with
    their parent."""
    from assets.pdf import classifiers, variants

    split = classifiers.stratified_split(ids, groups, 0.2, 0.2, seed,
                                         parent_ids=np.array([variants.parent_id(i) for i in ids]))
    return (classifiers.subset_rows(ids, split, ("train",)),
            classifiers.subset_rows(ids, split, ("validation", "test")))


def measured_set(folder: Path, classes: list[int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, model inputs, class indices) of the labelled measured files whose group is one of the classes."""
    from assets.pdf import measured
    from benchmarks.pdf_measured import find_labels, read_labels

    labels = read_labels(find_labels(folder, None)).set_index("file")["space_group"]
    found = measured.read_measured_folder(folder)
    keep = [i for i, name in enumerate(found.names) if name in labels.index and labels[name] in classes]
    return ([found.names[i] for i in keep], found.inputs[keep],
            np.searchsorted(classes, [labels[found.names[i]] for i in keep]))


def held_out_types(crystals: list, seed: int, share: float = 0.25) -> set[str]:
    """Type ids (variants.parent_id) held out for scoring: round(share * types) of each group, at least one where
    a group has two or more types, drawn with seed."""
    from assets.pdf import variants

    by_group: dict[int, list[str]] = {}
    for crystal in crystals:
        types = by_group.setdefault(crystal.space_group, [])
        if variants.parent_id(crystal.structure_id) not in types:
            types.append(variants.parent_id(crystal.structure_id))
    rng = np.random.default_rng(seed)
    held = set()
    for group, types in sorted(by_group.items()):
        if len(types) >= 2:
            held.update(rng.choice(types, size=max(1, round(share * len(types))), replace=False).tolist())
    return held


def prototype_profiles(card: dict, per_group: int, log=print) -> tuple[dict, dict]:
    """(training types' profiles, held-out types' profiles) of per_group decorated prototype crystals per group,
    with the card's generator settings, seed and augmentation (cached in the data root's structure cache)."""
    from assets.pdf import profiles, prototypes, variants
    from assets.pdf import defs as pdf_defs
    from resources.datapaths import cache_dir

    structures_config, profiles_config, seed = pdf_calibration.run_configs(card)
    crystals = prototypes.cached_prototype_crystals(
        cache_dir("pdf") / "structures", structures_config.space_groups, per_group, structures_config.max_atoms,
        seed, structures_config.variant_strain, structures_config.variant_angle_deg)
    held = held_out_types(crystals, seed)
    log(f"{len(crystals)} prototype crystals; held-out types: {sorted(held)}")
    rng = np.random.default_rng([seed, 1, 7])  # a stream of its own: the random parents' draws do not move
    both = profiles.profile_set(crystals, pdf_defs.pdf_settings_from(profiles_config),
                                pdf_defs.augmentation_from(profiles_config), rng)
    held_rows = np.isin([variants.parent_id(i) for i in both["structure_id"]], list(held))
    return ({key: value[~held_rows] if key != "r_A" else value for key, value in both.items()},
            {key: value[held_rows] if key != "r_A" else value for key, value in both.items()})


def scores_of(probabilities: np.ndarray, true_index: np.ndarray, raw: np.ndarray, threshold: float | None) -> dict:
    """FIGURES of calibrated probabilities (raw: the same model's uncalibrated ones, for ece_raw; threshold: the
    conformal set threshold, None for top-mass sets)."""
    from assets.pdf import calibration, classifiers

    return {"top1": classifiers.top_k_accuracy(probabilities, true_index, 1),
            "top2": classifiers.top_k_accuracy(probabilities, true_index, 2),
            "top6": classifiers.top_k_accuracy(probabilities, true_index, 6),
            "ece_raw": calibration.set_scores(raw, true_index)["ece"],
            **calibration.set_scores(probabilities, true_index, threshold)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=pdf_calibration.SHIPPED, help="whose card: shipped or a model folder")
    parser.add_argument("--parents", type=int, default=100, help="parents per group (train + validation; and scoring)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--data", type=Path, default=None, help="labelled measured .gr files to score as well")
    parser.add_argument("--prototypes", type=int, default=0,
                        help="decorated real structure types per group: held-out types scored as `prototypes`")
    parser.add_argument("--train-prototypes", action="store_true",
                        help="train on the other types' crystals as well (needs --prototypes)")
    args = parser.parse_args(argv)
    from dataclasses import replace

    from assets.pdf import calibration, compact
    from resources.conformal import tempered_softmax

    folder = compact.SHIPPED_DIR if args.model == pdf_calibration.SHIPPED else Path(args.model)
    if not (folder / compact.CARD_NAME).is_file() or (args.data is not None and not args.data.is_dir()) \
            or (args.train_prototypes and args.prototypes <= 0):
        print(f"--model {args.model}: no {compact.CARD_NAME} in {folder}, or --data {args.data} is not a folder, "
              "or --train-prototypes without --prototypes", file=sys.stderr)
        return 2
    bundle = compact.load_model_bundle(folder)
    card, classes = bundle["card"], bundle["classes"]
    first = pdf_calibration.run_configs(card)[0].structures_per_group

    def quiet(message: str) -> None:
        pass

    pool = pdf_calibration.regenerated_profiles(card, first, args.parents, quiet)
    x, y = pdf_calibration.class_index(pool, classes)
    known = np.isin(pool["space_group"], classes)  # the rows class_index kept
    train_rows, validation_rows = parent_split(pool["structure_id"][known], pool["space_group"][known], 0)
    test_x, test_y = pdf_calibration.class_index(
        pdf_calibration.regenerated_profiles(card, first + args.parents, args.parents, quiet), classes)
    sets = {"generated": (test_x, test_y)}
    train_x, train_y = x[train_rows], y[train_rows]
    if args.prototypes > 0:
        trained_types, held_types = prototype_profiles(card, args.prototypes, quiet)
        sets["prototypes"] = pdf_calibration.class_index(held_types, classes)
        print(f"prototype_test_profiles: {len(sets['prototypes'][1])}")
        if args.train_prototypes:
            extra_x, extra_y = pdf_calibration.class_index(trained_types, classes)
            train_x, train_y = np.concatenate([train_x, extra_x]), np.concatenate([train_y, extra_y])
            print(f"prototype_training_profiles: {len(extra_y)}")
    if args.data is not None:
        names, inputs, true_index = measured_set(args.data, classes)
        sets["measured"] = (inputs, true_index)
        print(f"measured_files_scored: {len(names)}")
    settings = replace(compact.CompactSettings(**{k: tuple(v) if isinstance(v, list) else v
                                                 for k, v in card["settings"].items()}), epochs=args.epochs)
    print(f"training_profiles: {len(train_y)}")
    print(f"validation_profiles: {len(validation_rows)}")
    print(f"generated_test_profiles: {len(test_y)}")
    per_seed = {name: [] for name in sets}
    ensemble = {name: [] for name in sets}
    for seed in range(args.seeds):
        model, _ = compact.train_compact_cnn(train_x, train_y, x[validation_rows], y[validation_rows],
                                             len(classes), settings, seed=seed, log=quiet)
        fitted = calibration.calibrate(compact.compact_logits(model, x[validation_rows]), y[validation_rows])
        temperature = fitted["temperature"]
        print(f"seed{seed}_temperature: {temperature:.3f}")
        for name, (inputs, true_index) in sets.items():
            logits = compact.compact_logits(model, inputs)
            calibrated = tempered_softmax(logits, temperature)
            per_seed[name].append(scores_of(calibrated, true_index, tempered_softmax(logits),
                                            fitted["set90_threshold"]))
            ensemble[name].append((calibrated, tempered_softmax(logits)))
            print(f"seed{seed}_{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in per_seed[name][-1].items()))
    for name, (_, true_index) in sets.items():
        spread = calibration.seed_spread(per_seed[name])
        for key in FIGURES:
            figure = spread[key]
            print(f"{name}_{key}_mean: {figure['mean']:.3f}")
            print(f"{name}_{key}_std: {figure['sd']:.3f}")
            print(f"{name}_{key}_range: {min(figure['values']):.3f}-{max(figure['values']):.3f}")
        calibrated, raw = (np.mean([pair[i] for pair in ensemble[name]], axis=0) for i in (0, 1))
        # the ensemble has no threshold of its own: its sets are top-mass sets
        for key, value in scores_of(calibrated, true_index, raw, None).items():
            print(f"{name}_ensemble_{key}: {value:.3f}")
    eces = [scores["ece"] for scores in per_seed["generated"]]
    print(f"generated_ece_spread_over_seeds: {max(eces) - min(eces):.3f}")
    return 0


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "pdf_seeds"))
