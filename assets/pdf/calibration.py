"""Probabilities that mean what they say, and the 90 % set: the space groups a model cannot tell apart.

A classifier trained with cross-entropy is often over- or under-confident. Temperature scaling (Guo et
al., ICML 2017) divides its logits by one number T fitted on the validation subset (never the test set);
the ranking of the groups does not change, only how sure the model says it is. The 90 % set of a profile is
then split-conformal (Sadinle, Lei & Wasserman, JASA 2019): every group whose calibrated probability is at
least 1 - t, with t the conformal bound of 1 - p(true group) over the validation rows, plus the most probable
group; it holds the true group 9 times in 10, and a set of more than one group says the model cannot tell
those apart on this profile. A model without a threshold gets the smallest set of groups whose
probabilities add up to 0.9 (larger sets for the same coverage).

The shipped model's validation profiles are not shipped with it (regenerating them needs every parent
of its 38-minute run). Its calibration set is regenerated instead: parents the training run never drew
(the generator is seeded per (seed, group, index), and the run drew indices 0..structures_per_group-1),
with the card's generator settings and augmentation (`fresh_parent_tasks`).
"""

from __future__ import annotations

import numpy as np

from assets.pdf.classifiers import classification_metrics
from resources.conformal import (
    expected_calibration_error,
    fit_temperature,
    prediction_sets,
    reliability_bins,
    set_threshold,
    tempered_softmax,
    top_mass_sets,
)

SET_LEVEL = 0.9  # the sets a prediction carries hold the true group this often (calibrated probabilities)
N_BINS = 15  # confidence bins of the ECE and the reliability plot (Guo et al. 2017)


def mean_nll(probabilities: np.ndarray, true_index: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (nats)."""
    p = np.asarray(probabilities, float)[np.arange(len(true_index)), np.asarray(true_index, int)]
    return float(-np.mean(np.log(np.maximum(p, 1e-300))))


def calibrate(validation_logits: np.ndarray, validation_index: np.ndarray) -> dict:
    """The temperature fitted on validation rows, with the validation NLL before and after, and the split-conformal
    set threshold of the calibrated validation probabilities (for the card)."""
    temperature = fit_temperature(validation_logits, validation_index)
    calibrated = tempered_softmax(validation_logits, temperature)
    return {
        "temperature": temperature,
        "n_rows": len(validation_index),
        "nll_raw": mean_nll(tempered_softmax(validation_logits), validation_index),
        "nll_calibrated": mean_nll(calibrated, validation_index),
        # a group is in a set when 1 - p <= this (Sadinle et al. 2019: the smallest mean size at 90 % coverage);
        # fitted on the same rows as T, one parameter earlier, so the guarantee is close to, not exactly, 90 %
        "set90_threshold": set_threshold(calibrated, validation_index, SET_LEVEL),
    }


def calibrated_scores(validation_logits: np.ndarray, validation_index: np.ndarray, test_logits: np.ndarray,
                      test_index: np.ndarray, classes: list[int]) -> dict:
    """Temperature and 90 % set threshold fitted on the validation rows only (the test set stays untouched for
    scoring): {'fitted' (calibrate's record), 'raw' and 'calibrated' test probabilities, 'metrics' (top-k, ECE,
    set coverage and size of the calibrated ones), 'ece_raw'}."""
    fitted = calibrate(validation_logits, validation_index)
    raw, calibrated = tempered_softmax(test_logits), tempered_softmax(test_logits, fitted["temperature"])
    metrics = {**classification_metrics(calibrated, test_index, classes),
               **set_scores(calibrated, test_index, fitted["set90_threshold"])}
    return {"fitted": fitted, "raw": raw, "calibrated": calibrated, "metrics": metrics,
            "ece_raw": set_scores(raw, test_index)["ece"]}


HEADLINE_PREFIXES = ("top", "ece", "set90")  # the scores a card and the UI carry


def headline_scores(metrics: dict) -> dict:
    """The scores a card carries: top-k accuracies, ECE and the 90 % sets' coverage and size."""
    return {key: value for key, value in metrics.items() if key.startswith(HEADLINE_PREFIXES)}


def seed_spread(scores_per_seed: list[dict]) -> dict:
    """{figure: {mean, sd, values}} of one set of figures per training seed (sd with ddof 1; 0 for one seed)."""
    spread = {}
    for key in scores_per_seed[0]:
        values = [float(scores[key]) for scores in scores_per_seed]
        spread[key] = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                       "values": values}
    return spread


def spread_text(figure: dict) -> str:
    """One seed_spread figure as text: 'mean ± sd (value, value, ...)', three decimals."""
    values = ", ".join(f"{value:.3f}" for value in figure["values"])
    return f"{figure['mean']:.3f} ± {figure['sd']:.3f} ({values})"


def set_mask(probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """(n, n_classes) booleans of each row's 90 % set: with a conformal threshold, the groups with 1 - p <= threshold
    and always the most probable one (never an empty set); without one (a model calibrated before thresholds, or
    not at all), the smallest set of groups whose probabilities reach 0.9."""
    p = np.asarray(probabilities, float)
    if threshold is None:
        return top_mass_sets(p, SET_LEVEL)
    sets = prediction_sets(p, threshold)
    sets[np.arange(len(p)), p.argmax(axis=1)] = True
    return sets


def set_scores(probabilities: np.ndarray, true_index: np.ndarray, threshold: float | None = None) -> dict:
    """ece, set90_coverage (share of rows whose set holds the true class) and set90_mean_size."""
    sets = set_mask(probabilities, threshold)
    return {
        "ece": expected_calibration_error(probabilities, true_index, N_BINS),
        "set90_coverage": float(sets[np.arange(len(true_index)), np.asarray(true_index, int)].mean()),
        "set90_mean_size": float(sets.sum(axis=1).mean()),
    }


def set_members(probabilities: np.ndarray, classes: list[int], threshold: float | None = None) -> list[list[int]]:
    """Per row, the groups of its set, most probable first."""
    p = np.asarray(probabilities, float)
    sets = set_mask(p, threshold)
    order = np.argsort(-p, axis=1, kind="stable")
    return [[int(classes[k]) for k in row_order if row_set[k]] for row_order, row_set in zip(order, sets)]


def reliability_figure(raw: np.ndarray, calibrated: np.ndarray, true_index: np.ndarray, new_figure):
    """Accuracy against confidence per bin, before and after temperature scaling, with the diagonal."""
    fig, axes = new_figure(size=(4.6, 4.2))
    ax = axes[0][0]
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="calibrated")
    for name, probabilities in (("raw softmax", raw), ("temperature-scaled", calibrated)):
        bins = reliability_bins(probabilities, true_index, N_BINS)
        used = bins["count"] > 0
        ece = expected_calibration_error(probabilities, true_index, N_BINS)
        ax.plot(bins["confidence"][used], bins["accuracy"][used], "o-", label=f"{name} (ECE {ece:.3f})")
    ax.set_xlabel("confidence (top-1 probability)", fontsize=11)
    ax.set_ylabel("accuracy", fontsize=11)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=9)
    return fig


def fresh_parent_tasks(space_groups: list[int], first_index: int, per_group: int, elements: list[str],
                       max_atoms: int, max_species: int, seed: int, n_variants: int, strain: float,
                       angle_deg: float, chunk_size: int = 25) -> list[tuple]:
    """variants.generate_family_chunk tasks for parents first_index..first_index+per_group-1 of each group:
    with first_index >= a run's structures_per_group, parents that run never saw, from the same generator."""
    return [((group, list(range(start, min(start + chunk_size, first_index + per_group))), list(elements),
              max_atoms, max_species, seed), n_variants, strain, angle_deg)
            for group in space_groups for start in range(first_index, first_index + per_group, chunk_size)]
