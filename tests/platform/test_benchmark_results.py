"""benchmarks.results records what a benchmark printed; benchmarks.report renders the docs from it."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks import report, results

REPO = Path(__file__).resolve().parents[2]

# A toy benchmark shaped like the real ones: argparse on sys.argv, `name: value` lines, headline last,
# exit 2 when its own check fails, and the standard last lines.
TOY = textwrap.dedent('''
    """Toy benchmark."""
    import argparse

    from benchmarks import results


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--n", type=int, default=2)
        parser.add_argument("--fail", action="store_true")
        parser.add_argument("--quiet", action="store_true")
        args = parser.parse_args()
        if args.quiet:
            return 1
        print("timing: best of 3 after a warm-up")
        print(f"pairs (two per item): {2 * args.n}")
        print(f"spectra_per_s: {1234.5 * args.n:.1f}")
        print(f"speedup_vs_reference: {3.25 * args.n}")
        return 2 if args.fail else 0


    if __name__ == "__main__":
        raise SystemExit(results.run(main, "toy"))
''')


def run_toy(tmp_path: Path, *arguments: str, env_dir: Path | None = None) -> subprocess.CompletedProcess:
    script = tmp_path / "toy_benchmark.py"
    script.write_text(TOY)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(results.ENV_DIR, None)
    if env_dir is not None:
        env[results.ENV_DIR] = str(env_dir)
    return subprocess.run([sys.executable, str(script), *arguments], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_toy_benchmark_writes_its_printed_figures_with_date_machine_and_command(tmp_path):
    out = tmp_path / "out"
    done = run_toy(tmp_path, "--n", "3", "--results-dir", str(out))
    assert done.returncode == 0, done.stderr  # argparse never saw --results-dir
    assert "spectra_per_s: 3703.5" in done.stdout  # the console still gets everything (tee)
    entry = json.loads((out / "toy.json").read_text())
    assert [f["name"] for f in entry["figures"]] == ["timing", "pairs", "spectra_per_s", "speedup_vs_reference"]
    assert entry["headline"] == "speedup_vs_reference"
    pairs, rate, speedup = entry["figures"][1:]
    assert (pairs["note"], pairs["number"]) == ("two per item", 6.0)
    assert (rate["value"], rate["number"]) == ("3703.5", 3703.5)
    assert speedup["number"] == 9.75
    assert entry["figures"][0]["number"] is None  # a text value stays text
    assert entry["command"] == "python -m benchmarks.toy --n 3"
    assert entry["machine"]["cores"] == os.cpu_count()
    assert entry["machine"]["load_1min_before"] >= 0
    assert entry["exit_code"] == 0
    when = datetime.datetime.strptime(entry["date_utc"], "%Y-%m-%d %H:%M").replace(tzinfo=datetime.timezone.utc)
    assert abs(datetime.datetime.now(datetime.timezone.utc) - when) < datetime.timedelta(minutes=10)
    assert entry["commit"] == subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, text=True,
                                             capture_output=True).stdout.strip()


def test_results_folder_from_the_equals_form_then_the_environment(tmp_path):
    flagged, from_env = tmp_path / "flagged", tmp_path / "env"
    assert run_toy(tmp_path, f"--results-dir={flagged}", env_dir=from_env).returncode == 0
    assert (flagged / "toy.json").exists() and not from_env.exists()
    assert run_toy(tmp_path, "--n", "1", env_dir=from_env).returncode == 0
    assert json.loads((from_env / "toy.json").read_text())["command"] == "python -m benchmarks.toy --n 1"


def test_a_failing_run_keeps_its_exit_code_and_a_run_without_figures_keeps_the_old_file(tmp_path):
    out = tmp_path / "out"
    assert run_toy(tmp_path, "--fail", "--results-dir", str(out)).returncode == 2
    assert json.loads((out / "toy.json").read_text())["exit_code"] == 2
    before = (out / "toy.json").read_text()
    assert run_toy(tmp_path, "--quiet", "--results-dir", str(out)).returncode == 1
    assert run_toy(tmp_path, "--help", "--results-dir", str(out)).returncode == 0
    assert (out / "toy.json").read_text() == before


def test_split_flag_in_both_forms_and_its_missing_value():
    argv = ["--n", "3", "--results-dir", "x", "--full"]
    assert results.split_flag(argv, "--results-dir") == (["--n", "3", "--full"], "x")
    assert results.split_flag(["--results-name=y"], "--results-name") == ([], "y")
    assert results.split_flag(["--n", "3"], "--results-dir") == (["--n", "3"], None)
    with pytest.raises(SystemExit, match="--results-dir needs a value"):
        results.split_flag(["--results-dir"], "--results-dir")


def test_results_name_keeps_a_second_configuration_apart_and_stays_in_the_command(tmp_path):
    out = tmp_path / "out"
    assert run_toy(tmp_path, "--results-name", "toy_big", "--n", "5", "--results-dir", str(out)).returncode == 0
    entry = json.loads((out / "toy_big.json").read_text())
    assert entry["name"] == "toy_big" and not (out / "toy.json").exists()
    assert entry["command"] == "python -m benchmarks.toy --results-name toy_big --n 5"


PAGE = """# Toy page

Hand-written text stays.

<!-- figures:toy spectra_per_s speedup_vs_reference -->
stale text
<!-- /figures -->

Headline: <!-- headline:toy --><!-- /headline -->

<!-- benchmarks-index -->
<!-- /benchmarks-index -->
"""


def test_report_renders_a_page_from_the_toy_results_and_check_sees_hand_edits(tmp_path):
    out = tmp_path / "out"
    assert run_toy(tmp_path, "--n", "2", "--results-dir", str(out)).returncode == 0
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    assert report.main(["--results", str(out), "--check", str(page)]) == 1
    assert report.main(["--results", str(out), str(page)]) == 0
    text = page.read_text()
    assert "stale text" not in text and "Hand-written text stays." in text
    assert "| `spectra_per_s` | 2469.0 |\n| `speedup_vs_reference` | 6.5 |" in text
    assert "`pairs`" not in text.split("Headline:")[0]  # only the figures the marker names
    headline = text.split("Headline: <!-- headline:toy -->")[1].split("<!-- /headline -->")[0]
    assert headline.startswith("`speedup_vs_reference` **6.5** (") and "`python -m benchmarks.toy --n 2`)" in headline
    assert "| `toy` | `speedup_vs_reference`: 6.5 |" in text
    assert report.main(["--results", str(out), "--check", str(page)]) == 0  # idempotent
    page.write_text(text.replace("| 6.5 |", "| 7.0 |"))  # a figure edited by hand
    assert report.main(["--results", str(out), "--check", str(page)]) == 1


def test_a_marker_without_results_or_figure_is_an_error_naming_page_and_marker(tmp_path):
    out = tmp_path / "out"
    assert run_toy(tmp_path, "--results-dir", str(out)).returncode == 0
    entries = report.load_results(out)
    with pytest.raises(report.ReportError, match=r"p\.md: <!-- figures:eis_real --> has no results file eis_real\.json"):
        report.render_page("<!-- figures:eis_real --><!-- /figures -->", entries, "p.md")
    with pytest.raises(report.ReportError, match="asks for figure 'accuracy', which results/toy.json does not hold"):
        report.render_page("<!-- headline:toy accuracy --><!-- /headline -->", entries, "p.md")


def test_every_figure_block_in_the_readme_and_docs_has_its_results_and_is_current(capsys):
    """The committed pages are exactly what `python -m benchmarks.report` renders from benchmarks/results/."""
    code = report.main(["--check"])
    printed = capsys.readouterr()
    assert code == 0, (f"{printed.out}{printed.err}a results file changed or a page was edited by hand: run "
                       "`./dev.sh python -m benchmarks.report` and commit the pages with the results files")
