"""Space groups of measured PDFs: the model `space_group_predictions` uses by default, scored on labelled files.

    python -m benchmarks.pdf_measured --data DIR [--labels FILE] [--model shipped|FOLDER] [--top-k 6]

DIR holds `.gr` files (any of the header styles the reader knows) and `measured_labels.csv` (columns
`file`, `space_group`; other columns ignored); the labels file is looked for in DIR, then beside DIR,
unless --labels names it. The files are copied into raw/pdf/measured/ of a fresh temporary data root
(the originals are never touched) and `space_group_predictions` is materialized in process there, so
the figures are what a user gets: the pipeline's reader, its range handling and its model. --model
names a saved compact model folder (card.json + weights) instead of the shipped one.

Prints one line per labelled file (true group, its rank, the top k, its 90 % set: the smallest set of groups
whose calibrated probabilities reach 0.9), then measured_files, measured_files_read, the share of files whose
90 % set holds the true group and the sets' mean size, and the top-1 / top-2 / top-6 shares, all over the
files whose group is one of the model's classes (a file the reader rejects counts as a miss). For an ensemble of
training seeds (the shipped model), each member is then scored alone the same way (saved as a model folder of its
own: its weights, its calibration) and the spread over the seeds of each headline figure is printed
(`members_measured_top1_share: mean ± sd (member 0, 1, ...)`), before the model's own summary lines.
Public measured data: see the README's pdf section (PDF to the People data, diffpy repositories).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

LABELS_NAME = "measured_labels.csv"


def find_labels(data: Path, labels: Path | None) -> Path:
    candidates = [labels] if labels else [data / LABELS_NAME, data.parent / LABELS_NAME]
    for path in candidates:
        if path and path.is_file():
            return path
    raise FileNotFoundError(f"no labels: expected {' or '.join(str(p) for p in candidates)} "
                            f"(columns file, space_group)")


def read_labels(path: Path) -> pd.DataFrame:
    labels = pd.read_csv(path)
    missing = {"file", "space_group"} - set(labels.columns)
    if missing:
        raise ValueError(f"{path}: expected columns file and space_group; missing {sorted(missing)}")
    return labels[["file", "space_group"]].astype({"file": str, "space_group": int})


def predict_folder(data: Path, model: str) -> tuple[pd.DataFrame, list[str]]:
    """(predictions export of every file, every class ranked; the model's classes) from a fresh data root."""
    root = Path(tempfile.mkdtemp(prefix="pdf_measured_"))
    os.environ["MATERIALS_DATA"] = str(root)
    measured_dir = root / "raw" / "pdf" / "measured"
    measured_dir.mkdir(parents=True)
    for path in sorted(data.glob("*.gr")):
        shutil.copyfile(path, measured_dir / path.name)

    from dagster import DagsterInstance, materialize

    from assets.pdf import compact
    from assets.pdf.defs import space_group_predictions
    from resources.compute import ComputeResource
    from resources.storage import MaterialsStorage

    # every class ranked (top_k is capped at the model's classes): the 90 % set may reach beyond the top k
    config = {"use_examples": "never", "model": model, "top_k": 1000, "max_rejected_share": 1.0}
    with DagsterInstance.ephemeral() as instance:
        result = materialize([space_group_predictions], instance=instance,
                             resources={"io_manager": MaterialsStorage(), "compute": ComputeResource(device="cpu")},
                             run_config={"ops": {"space_group_predictions": {"config": config}}})
    table = result.output_for_node("space_group_predictions")
    folder = compact.SHIPPED_DIR if model == "shipped" else Path(model)
    classes = compact.load_model_bundle(folder)["classes"]
    shutil.rmtree(root, ignore_errors=True)
    return table, classes


def member_folders(folder: Path, target: Path) -> list[Path]:
    """Each member of a saved ensemble as a model folder of its own under target (weights, and a card with the
    member's calibration, test scores and id); [] for a single network."""
    from assets.pdf import compact

    card = compact.load_model_bundle(folder)["card"]
    members = card.get("members", [])
    folders = []
    for k, record in enumerate(members if len(members) > 1 else []):
        member = compact.load_model_bundle(folder, member=k)
        member_card = {**{key: value for key, value in card.items() if key not in ("members", "member_spread")},
                       "model_id": member["model_id"], "seed": record["seed"],
                       "calibration": record["calibration"], "test_scores": record["test_scores"]}
        folders.append(compact.save_model_bundle(target / f"member{k}", member["model"], member_card))
    return folders


def score(labels: pd.DataFrame, table: pd.DataFrame, classes: list[int], top_k: int) -> dict:
    """Per-file rank of the true group (None when unread or outside the top k), its 90 % set, and the headline
    shares; an unread file counts as a miss and as a set of size 0 that does not hold its group."""
    rows, ranks, in_set, set_sizes = [], {}, {}, {}
    for label in labels.itertuples(index=False):
        predicted = table[table["file"] == label.file].sort_values("rank")
        ranked = predicted["space_group"].astype(int).tolist()
        top = ranked[:top_k]
        rank = top.index(label.space_group) + 1 if label.space_group in top else None
        members = predicted.loc[predicted["in_set90"].astype(bool), "space_group"].astype(int).tolist()
        ranks[label.file], in_set[label.file], set_sizes[label.file] = rank, label.space_group in members, len(members)
        read = "read" if len(predicted) else "NOT READ"
        model_note = "" if label.space_group in classes else " (not one of the model's classes)"
        rows.append(f"{label.file}: true {label.space_group}{model_note}, rank {rank or '-'}, "
                    f"top {top_k} {top} [{read}; r 1.5-{predicted['r_max_used_A'].iloc[0]:g} A]; "
                    f"90 % set {members} ({'holds' if in_set[label.file] else 'misses'} the true group; "
                    f"{predicted['set90'].iloc[0]})" if len(predicted)
                    else f"{label.file}: true {label.space_group}{model_note}, rank -, [{read}]")
    scored = [f for f, g in zip(labels["file"], labels["space_group"]) if g in classes]

    def share(hit) -> float:
        return sum(hit(f) for f in scored) / len(scored) if scored else float("nan")

    shares = {k: share(lambda f, k=k: ranks[f] is not None and ranks[f] <= k) for k in (1, 2, 6)}
    return {"lines": rows, "n_read": int(table["file"].nunique()) if len(table) else 0, "shares": shares,
            "set90_coverage": share(lambda f: in_set[f]),
            "set90_mean_size": sum(set_sizes[f] for f in scored) / len(scored) if scored else float("nan")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of .gr files (and measured_labels.csv)")
    parser.add_argument("--labels", type=Path, default=None, help="labels CSV (default: DIR/ or DIR/../measured_labels.csv)")
    parser.add_argument("--model", default="shipped", help="shipped (default) or a saved compact model folder")
    parser.add_argument("--top-k", type=int, default=6)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"--data {args.data}: not a folder", file=sys.stderr)
        return 2
    labels = read_labels(find_labels(args.data, args.labels))
    table, classes = predict_folder(args.data, args.model)
    result = score(labels, table, classes, max(args.top_k, 6))
    for line in result["lines"]:
        print(line)
    print_member_spread(labels, args)  # before the ensemble's own figures: the last line is the headline
    print(f"model_id: {table['model_id'].iloc[0] if len(table) else '-'}")
    print(f"measured_files: {len(labels)}")
    print(f"measured_files_read: {result['n_read']}")
    print(f"measured_set90_coverage: {result['set90_coverage']:.3f}")
    print(f"measured_set90_mean_size: {result['set90_mean_size']:.2f}")
    for k in (1, 2, 6):
        print(f"measured_top{k}_share: {result['shares'][k]:.3f}")
    return 0


def print_member_spread(labels: pd.DataFrame, args) -> None:
    """The headline figures of each member of an ensemble scored alone, as mean ± sd over the seeds."""
    from assets.pdf import calibration, compact

    folder = compact.SHIPPED_DIR if args.model == "shipped" else Path(args.model)
    with tempfile.TemporaryDirectory(prefix="pdf_members_") as target:
        figures = []
        for member in member_folders(folder, Path(target)):
            table, classes = predict_folder(args.data, str(member))
            result = score(labels, table, classes, max(args.top_k, 6))
            figures.append({"set90_coverage": result["set90_coverage"], "set90_mean_size": result["set90_mean_size"],
                            **{f"top{k}_share": result["shares"][k] for k in (1, 2, 6)}})
    if figures:
        print(f"members_scored: {len(figures)}")
    for key, spread in (calibration.seed_spread(figures).items() if figures else []):
        print(f"members_measured_{key}: {calibration.spread_text(spread)}")


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "pdf_measured"))
