"""Matplotlib figures as PNG embedded in Markdown (for Dagster metadata)."""

from __future__ import annotations

import base64
import io

import numpy as np


def figure_markdown(fig, alt: str = "plot") -> str:
    """Render a matplotlib figure to an inline PNG Markdown image and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![{alt}](data:image/png;base64,{encoded})"


def round_sig(value: float, digits: int = 4) -> float:
    """`value` rounded to `digits` significant digits (metadata a person reads; Dagster plots floats over runs)."""
    value = float(value)
    if not np.isfinite(value) or value == 0:
        return value
    return float(f"{value:.{digits}g}")


def table_markdown(frame, rows: int | None = None) -> str:
    """The first `rows` rows of a DataFrame as a Markdown table (for MetadataValue.md); "(none)" when empty."""
    shown = frame if rows is None else frame.head(rows)
    return shown.to_markdown(index=False, floatfmt=".4g") if len(shown) else "(none)"


def frame_table(frame, rows: int | None = 200, digits: int = 4):
    """A DataFrame as Dagster table metadata with a typed schema (floats to `digits` significant digits)."""
    import dagster as dg

    kinds = {"f": "float", "i": "int", "u": "int", "b": "bool"}
    shown = frame if rows is None else frame.head(rows)
    schema = dg.TableSchema(columns=[dg.TableColumn(str(name), kinds.get(dtype.kind, "string"))
                                     for name, dtype in shown.dtypes.items()])
    records = []
    for record in shown.to_dict(orient="records"):
        records.append(dg.TableRecord({
            str(key): round_sig(value, digits) if isinstance(value, float)
            else value if isinstance(value, (int, bool, str)) or value is None else str(value)
            for key, value in record.items()
        }))
    return dg.MetadataValue.table(records, schema=schema)


def new_figure(ncols: int = 1, size=(5.0, 4.0)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(size[0] * ncols, size[1]), squeeze=False)


def confusion_matrix_markdown(matrices: dict[str, np.ndarray], labels: list[str]) -> str:
    """Side-by-side confusion matrices (rows: true, columns: predicted)."""
    fig, axes = new_figure(ncols=len(matrices))
    for ax, (title, matrix) in zip(axes[0], matrices.items()):
        ax.imshow(matrix, cmap="Blues")
        ax.set_title(title)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for (i, j), value in np.ndenumerate(matrix):
            if value:
                ax.text(j, i, str(int(value)), ha="center", va="center", fontsize=8)
    return figure_markdown(fig, "confusion matrix")


def parity_markdown(true: np.ndarray, predicted: np.ndarray, label: str) -> str:
    """Predicted versus true with the y = x line."""
    fig, axes = new_figure()
    ax = axes[0][0]
    ax.scatter(true, predicted, s=8, alpha=0.6)
    low = float(np.nanmin([np.nanmin(true), np.nanmin(predicted)]))
    high = float(np.nanmax([np.nanmax(true), np.nanmax(predicted)]))
    ax.plot([low, high], [low, high], "k--", lw=1)
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    return figure_markdown(fig, f"parity {label}")
