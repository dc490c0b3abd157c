"""Pictures and summaries of spectra and fits for asset metadata (matplotlib through resources.plots)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from resources.plots import figure_markdown, new_figure, round_sig


def nyquist_markdown(curves: dict[str, np.ndarray], title: str) -> str:
    """Nyquist plot (-Im Z against Re Z, equal axes) of labelled complex spectra."""
    fig, axes = new_figure(size=(6.0, 4.5))
    ax = axes[0][0]
    for label, z in curves.items():
        ax.plot(z.real, -z.imag, ".-", ms=3, lw=1, label=label)
    ax.set_xlabel("Re Z / Ohm")
    ax.set_ylabel("-Im Z / Ohm")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return figure_markdown(fig, title)


def reliability_markdown(curves: dict[str, dict], title: str) -> str:
    """Reliability diagram: accuracy against mean top probability per confidence bin (resources.conformal.reliability_bins),
    one curve per label, marker area by rows in the bin, and the diagonal a calibrated model follows."""
    fig, axes = new_figure(size=(5.0, 4.5))
    ax = axes[0][0]
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="calibrated")
    for label, bins in curves.items():
        used = bins["count"] > 0
        ax.plot(bins["confidence"][used], bins["accuracy"][used], "-", lw=1, label=label)
        ax.scatter(bins["confidence"][used], bins["accuracy"][used], s=4 + 60 * bins["count"][used] / bins["count"].max())
    ax.set_xlabel("mean top probability in bin")
    ax.set_ylabel("accuracy in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return figure_markdown(fig, title)


def set_size_markdown(counts: dict[str, int], title: str) -> str:
    """Bar chart of how many spectra got a circuit set of each size ({size as text: spectra})."""
    fig, axes = new_figure(size=(5.0, 3.5))
    ax = axes[0][0]
    sizes = [int(size) for size in counts]
    ax.bar(sizes, list(counts.values()), color="tab:blue")
    ax.set_xlabel("circuits in the 90 % set")
    ax.set_ylabel("spectra")
    ax.set_xticks(sizes)
    ax.set_title(title)
    return figure_markdown(fig, title)


def _start_summary(fits: pd.DataFrame, prefix: str, label: str) -> dict:
    """Reproduced share, median relative residual and iterations of one start's fits."""
    return {
        f"{label}_reproduces_share": round_sig(float(fits[f"{prefix}reproduces"].mean())),
        f"{label}_median_relative_residual": round_sig(float(fits[f"{prefix}relative_residual"].median())),
        f"{label}_median_iterations": float(fits[f"{prefix}iterations"].median()),
    }


def fit_summary(fits: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """eis_circuit_fits' figures: the shares that reproduce their spectrum (relative residual within
    the bound) and that determine every parameter too, how often the supported circuit is simpler,
    per start; for labelled spectra (their true `parameters` in rows) the median log10 parameter error."""
    from assets.eis.fitting import log10_parameter_error

    if fits.empty:
        return {}
    summary = {
        "reproduces_share": round_sig(float(fits["reproduces"].mean())),
        "determined_share": round_sig(float(fits["determined"].mean())),
        "supported_differs_share": round_sig(float((fits["supported_circuit"] != fits["circuit"]).mean())),
        **_start_summary(fits, "", "final"),
        **_start_summary(fits, "initial_", "regressor_start"),
        **_start_summary(fits, "naive_", "naive_start"),
        "n_selected_by_criterion": int((fits["selected_by"] != "classifier").sum()),
    }
    labelled = (fits["origin"] == "labelled").to_numpy()
    if labelled.any():
        truth, circuits = rows.loc[labelled, "parameters"], fits.loc[labelled, "circuit"]
        for label, column in (("regressor_prediction", "initial_parameters"), ("naive_start_fit", "naive_parameters"), ("final_fit", "parameters")):
            errors = log10_parameter_error(fits.loc[labelled, column], truth, circuits)
            summary[f"labelled_median_log10_error_{label}"] = round_sig(float(np.nanmedian(errors))) if np.isfinite(errors).any() else float("nan")
    return summary
