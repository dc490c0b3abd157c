"""The end-of-run summary names the headline numbers, failed checks and exports of the run just made."""

from __future__ import annotations

import numpy as np
from dagster import instance_for_test, materialize

from assets.diffraction import defs as diffraction
from orchestration.summary import run_summary


def test_summary_shows_rejections_and_the_failed_check(data_root, test_resources):
    folder = data_root / "raw" / "diffraction" / "experimental"
    folder.mkdir(parents=True)
    np.savez(folder / "good.npz", x=np.linspace(0.1, 1.6, 147), y=np.zeros((2, 2, 147)))
    (folder / "broken.npz").write_bytes(b"not a zip")
    config = {"experimental_maps": {"config": {"max_rejected_share": 0.2}}}
    with instance_for_test() as instance:
        result = materialize([diffraction.experimental_maps], resources=test_resources, instance=instance,
                             run_config={"ops": config}, raise_on_error=False)
        lines = run_summary(instance)
    assert lines[0].startswith("== __ephemeral_asset_job__: FAILURE") and result.run_id[:8] in lines[0]
    assert "diffraction" in lines
    [scores] = [line for line in lines if line.startswith("  experimental_maps:")]
    assert "n_user_records 2" in scores and "n_rejected 1" in scores and "rejected_share 0.5" in scores
    assert "  CHECK FAILED experimental_maps.rejected_share_within_bound (ERROR)" in lines


def test_exports_are_printed_relative_to_the_data_root_which_is_printed_once(data_root, tmp_path):
    """Assets record exports absolute (MetadataValue.path of a full path), relative, or as a JSON of paths."""
    from dagster import MetadataValue, Output, asset

    outside = tmp_path / "elsewhere" / "kept_whole.csv"

    @asset
    def absolute_export():
        return Output(1, metadata={"export": MetadataValue.path(str(data_root / "exports" / "a.csv"))})

    @asset
    def relative_export():
        return Output(1, metadata={"predictions_file": MetadataValue.path("exports/b.csv")})

    @asset
    def json_exports():
        paths = {"map1": str(data_root / "exports" / "maps" / "c.npz"), "other": str(outside)}
        return Output(1, metadata={"exports": MetadataValue.json(paths)})

    with instance_for_test() as instance:
        materialize([absolute_export, relative_export, json_exports], instance=instance)
        lines = run_summary(instance)
    assert lines[1] == f"data root: {data_root} (export paths below are relative to it)"
    assert sum(str(data_root) in line for line in lines) == 1
    assert f"  exports: {outside}, exports/a.csv, exports/b.csv, exports/maps/c.npz" in lines  # sorted
