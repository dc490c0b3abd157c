"""Pictures of spectra for asset metadata (matplotlib through resources.plots)."""

from __future__ import annotations

import numpy as np

from resources.plots import figure_markdown, new_figure


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
