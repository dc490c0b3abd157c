"""The Dagster UI in a real headless Chromium: groups and assets shown, a launch from the UI succeeds."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

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
SMALL_ASSET = "eis_simulated_spectra"
RUNS = "{ runsOrError { ... on Runs { results { runId status } } } }"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (Debian package chromium)")


def groups_and_assets() -> dict[str, list[str]]:
    shown: dict[str, list[str]] = {}
    for node in defs.get_repository_def().asset_graph.asset_nodes:
        shown.setdefault(node.group_name, []).append(node.key.to_user_string())
    return shown


def wait_for_run(url: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = graphql(url, RUNS)["runsOrError"]["results"]
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return runs[0]["status"]
        time.sleep(2.0)
    raise TimeoutError("the run launched from the UI did not finish")


def test_asset_graph_in_browser_and_launch_from_ui(tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with running_dagster_dev(tmp_path) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        try:
            for group, keys in groups_and_assets().items():
                page.goto(f"{url}/locations/{LOCATION}/asset-groups/{group}")
                page.get_by_text(group, exact=True).first.wait_for(timeout=60_000)
                page.screenshot(path=str(ARTIFACTS / f"ui_graph_{group}.png"))
                # The graph shortens long names; the list view of the same group shows them whole.
                page.goto(f"{url}/locations/{LOCATION}/asset-groups/{group}/list")
                for key in keys:
                    page.get_by_text(key, exact=True).first.wait_for(timeout=60_000)

            page.goto(f"{url}/assets/{SMALL_ASSET}")
            skip = page.get_by_role("button", name="Skip")  # the first-visit community dialog
            try:
                skip.click(timeout=10_000)
            except PlaywrightTimeout:
                pass
            try:
                page.get_by_role("button", name="Materialize").first.click(timeout=60_000)
            finally:
                page.screenshot(path=str(ARTIFACTS / "ui_asset_page.png"))
            status = wait_for_run(url, timeout_s=300)
            page.goto(f"{url}/runs")
            page.screenshot(path=str(ARTIFACTS / "ui_run_launched.png"))
        finally:
            browser.close()
    assert status == "SUCCESS"
