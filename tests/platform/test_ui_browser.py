"""The Dagster UI in a real headless Chromium, as a user follows it.

Groups and assets are shown; figures render legibly (a confusion matrix, a Nyquist plot);
a user drops a bad file, launches the intake asset from the UI, and sees the WARNING line
naming the file in the run's log and the rejected count on the asset page.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from dagster import DagsterInstance, materialize
from dagster._core.instance.ref import InstanceRef

from orchestration.definitions import defs
from tests.platform.dagster_dev import graphql, running_dagster_dev

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Flags for a closed network: no background connections Chromium would otherwise retry.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LOCATION = "orchestration.definitions"
RUNS = "{ runsOrError { ... on Runs { results { runId status jobName } } } }"
UI_LAUNCH_JOB = "__ASSET_JOB"  # what the UI's Materialize button launches (sensors launch named jobs)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (Debian package chromium)")


def groups_and_assets() -> dict[str, list[str]]:
    shown: dict[str, list[str]] = {}
    for node in defs.get_repository_def().asset_graph.asset_nodes:
        shown.setdefault(node.group_name, []).append(node.key.to_user_string())
    return shown


def runs(url: str) -> list[dict]:
    return graphql(url, RUNS)["runsOrError"]["results"]


def wait_for_new_run(url: str, known: set[str], timeout_s: float) -> dict:
    """The first run launched from the UI that is not in `known`, once it has finished."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        new = [run for run in runs(url) if run["runId"] not in known and run["jobName"] == UI_LAUNCH_JOB]
        if new and new[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return new[0]
        time.sleep(2.0)
    raise TimeoutError("the run launched from the UI did not finish")


def materialize_figures(data: Path, home: Path) -> None:
    """A tiny phase CNN (confusion matrix) and interpolated EIS spectra (Nyquist plot), into the UI's instance."""
    from assets.diffraction import defs as diffraction
    from assets.eis import defs as eis
    from resources.cluster import DaskResource
    from resources.compute import ComputeResource
    from resources.storage import MaterialsStorage

    resources = {"compute": ComputeResource(device="cpu"), "dask": DaskResource(synchronous=True),
                 "io_manager": MaterialsStorage(root=str(data))}
    config = {
        "diffraction_default_patterns": {"config": {"orientations_per_phase": 20}},
        "phase_cnn": {"config": {"epochs": 1}},
        "eis_simulated_spectra": {"config": {"spectra_per_class": 4}},
    }
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        materialize([diffraction.diffraction_default_patterns, diffraction.phase_cnn, eis.eis_simulated_spectra,
                     eis.eis_spectra, eis.eis_interpolated],
                    resources=resources, instance=instance, run_config={"ops": config})


def show_markdown(page, entry: str, screenshot: Path) -> None:
    """Open a Markdown metadata entry (a figure) of the asset page in its dialog and screenshot it."""
    page.locator("tr", has_text=entry).get_by_text("[Show Markdown]").first.click(timeout=30_000)
    page.get_by_role("button", name="Close").wait_for(timeout=30_000)
    page.locator("img").last.wait_for(timeout=30_000)
    page.screenshot(path=str(screenshot))
    page.get_by_role("button", name="Close").click()


def test_ui_shows_figures_and_a_bad_file_from_drop_to_warning(tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    data = tmp_path / "data"
    with running_dagster_dev(tmp_path) as url, sync_playwright() as playwright:
        materialize_figures(data, tmp_path / "dagster_home")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1400})
        try:
            for group, keys in groups_and_assets().items():
                page.goto(f"{url}/locations/{LOCATION}/asset-groups/{group}")
                page.get_by_text(group, exact=True).first.wait_for(timeout=60_000)
                page.screenshot(path=str(ARTIFACTS / f"ui_graph_{group}.png"))
                # The graph shortens long names; the list view of the same group shows them whole.
                page.goto(f"{url}/locations/{LOCATION}/asset-groups/{group}/list")
                for key in keys:
                    page.get_by_text(key, exact=True).first.wait_for(timeout=60_000)

            page.goto(f"{url}/assets/phase_cnn")
            page.get_by_text("confusion_matrix").first.wait_for(timeout=60_000)
            try:
                page.get_by_role("button", name="Skip").click(timeout=10_000)  # the first-visit community dialog
            except PlaywrightTimeout:
                pass
            show_markdown(page, "confusion_matrix", ARTIFACTS / "ui_confusion_matrix.png")
            page.goto(f"{url}/assets/eis_interpolated")
            page.get_by_text("nyquist").first.wait_for(timeout=60_000)
            show_markdown(page, "nyquist", ARTIFACTS / "ui_nyquist.png")

            # The user drops one good and one broken map, then launches the intake asset from the UI.
            folder = data / "raw" / "diffraction" / "experimental"
            np.savez(folder / "good.npz", x=np.linspace(0.1, 1.6, 147), y=np.zeros((2, 2, 147)))
            (folder / "broken.npz").write_bytes(b"PK\x03\x04 half a zip")
            known = {run["runId"] for run in runs(url)}
            page.goto(f"{url}/assets/experimental_maps")
            page.get_by_role("button", name="Materialize").first.click(timeout=60_000)
            run = wait_for_new_run(url, known, timeout_s=300)
            assert run["status"] == "SUCCESS"  # 1 of 2 user files rejected: within the default bound of 0.5

            page.goto(f"{url}/runs/{run['runId']}")
            warning = "raw/diffraction/experimental/broken.npz: 1 of 1 records rejected (whole file)"
            page.get_by_text(warning).first.wait_for(timeout=60_000)
            page.get_by_placeholder("Filter").first.fill("records rejected")  # the log's own text filter
            page.screenshot(path=str(ARTIFACTS / "ui_run_log_warning.png"))

            page.goto(f"{url}/assets/experimental_maps")
            page.get_by_text("n_rejected").first.wait_for(timeout=60_000)
            page.get_by_text("rejections_by_file").first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "ui_asset_rejected_count.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "ui_failure.png"), full_page=True)
            (ARTIFACTS / "ui_failure.txt").write_text(page.inner_text("body"))
            raise
        finally:
            browser.close()
