"""benchmarks.electrodes_real with every flag, on a tiny export written by hand in the Battery Explorer CSV style."""

import re

import pytest

# The export's exact style: its header, `Li0 –1CoO2` ranges (space, en dash), Hall symbols with doubled quotes,
# formulas without a range, lower-case Type, outcome columns filled in.
HEADER = ("Battid,Reduced Cell Formula,Type,Spacegroup,Average Voltage,Capacity Grav,Capacity Vol,Specific E Wh/kg,"
          "E Density Wh/l,Stability Charge,Stability Discharge\n")
TRAINING = '''\
mp-1001_Li,Li0 –1CoO2,intercalation,"-R 3 2""",3.9,274,1380,1069,5382,0.0,0.0
mp-1002_Li,Li0 –1NiO2,intercalation,"-R 3 2""",3.8,275,1310,1045,4978,0.02,0.0
mp-1003_Li,Li0 –1Mn2O4,intercalation,-F 4vw 2vw 3,4.05,148,620,599,2511,0.03,0.0
mp-1004_Li,Li0 –1FePO4,intercalation,-P 2ac 2n,3.45,170,600,587,2070,0.01,0.0
mp-1005_Li,Li0 –1MnPO4,intercalation,-P 2ac 2n,4.1,171,590,701,2419,0.05,0.0
mp-1006_Li,Li0 –1CoPO4,intercalation,-P 2ac 2n,4.8,167,620,802,2976,0.06,0.01
mp-1007_Li,Li4 –7Ti5O12,intercalation,-F 4vw 2vw 3,1.55,175,600,271,930,0.01,0.02
mp-1008_Li,Li0 –1TiS2,intercalation,"-P 3 2""",2.1,239,760,502,1596,0.0,0.01
mp-1009_Li,Li0 –1V2O5,intercalation,-P 2ab 2a,3.3,147,490,485,1617,0.02,0.04
mp-1010_Li,Li1 –2NbVO4,intercalation,-I 2b 2,1.29,121,557,156,720,0.06,0.11
mp-1011_Li,Li0 –1C6,intercalation,-P 6c 2c,0.1,372,830,37,83,0.0,0.0
mp-1012_Li,Li1 –3V2(PO4)3,intercalation,-P 2ybc,3.8,133,390,505,1482,0.03,0.02
mp-1013_Li,Li0 –1MoS2,intercalation,-P 6c 2c,1.9,167,840,317,1596,0.05,0.08
mp-1014_Li,Li0 –2MnO2,intercalation,-P 2ybc,2.9,285,1200,826,3480,0.09,0.03
mp-1015_Li,Li2FeSiO4,intercalation,P 1,3.1,166,530,515,1643,0.04,0.03
mp-1016_Mg,Mg0 –0.5MoO2,intercalation,-P 2ac 2n,1.28,191,1069,244,1366,0.09,0.17
mp-1017_Mg,Mg0 –1Mn2O4,intercalation,-F 4vw 2vw 3,2.9,270,1150,783,3335,0.05,0.06
mp-1018_Mg,Mg0 –0.5TiO2,intercalation,P 1,1.24,291,1143,361,1415,0.17,0.03
'''
HOLDOUT = '''\
mp-2001_Li,Li0 –1CrO2,intercalation,"-R 3 2""",3.6,280,1300,1008,4680,0.05,0.02
mp-2002_Li,Li0 –1NiPO4,intercalation,-P 2ac 2n,5.1,166,600,847,3060,0.09,0.04
mp-2003_Mg,Mg0 –1TiS2,intercalation,"-P 3 2""",1.2,210,700,252,840,0.04,0.05
'''
HOLDOUT_LINES = ("holdout_mae_V", "holdout_coverage80", "holdout_coverage95")


@pytest.fixture
def export(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "battery_explorer_tiny.csv").write_text(HEADER + TRAINING, encoding="utf-8")
    (tmp_path / "holdout.csv").write_text(HEADER + HOLDOUT, encoding="utf-8")
    return folder, tmp_path / "holdout.csv"


def printed(capsys) -> dict[str, str]:
    """name -> value of every `name: value` line the benchmark printed."""
    lines = capsys.readouterr().out.splitlines()
    return dict(line.split(": ", 1) for line in lines if re.match(r"^[\w ()+,-]+: ", line))


def test_every_flag_on_a_tiny_hand_written_export(export, capsys, monkeypatch):
    """--data (a folder), --holdout, --partition and --full in one run: every model's CV MAE and the holdout lines."""
    from benchmarks import electrodes_real

    monkeypatch.delenv("MP_API_KEY", raising=False)
    folder, holdout = export
    assert electrodes_real.main(["--data", str(folder), "--holdout", str(holdout), "--partition", "all", "--full"]) == 0
    out = printed(capsys)
    for name in ("forest", "boosting", "network", "composition", "median", "trees", "ensemble", "chemistry"):
        assert 0 <= float(out[f"cv_mae_V_{name}"]) < 5
    assert out["holdout_rows"] == "3 of 3"
    for line in HOLDOUT_LINES:
        assert 0 <= float(out[line]) <= (5 if line == "holdout_mae_V" else 1)
    assert out["sanity_LiCoO2_V"]


def test_a_single_file_and_an_ion_partition_without_holdout(export, capsys, monkeypatch):
    from benchmarks import electrodes_real

    monkeypatch.delenv("MP_API_KEY", raising=False)
    folder, _ = export
    assert electrodes_real.main(["--data", str(folder / "battery_explorer_tiny.csv"), "--partition", "Li"]) == 0
    out = printed(capsys)
    assert out["records"].startswith("15 ")  # the three Mg rows are not in the Li partition
    assert float(out["cv_mae_V_composition"]) >= 0
    assert not set(HOLDOUT_LINES) & set(out)
    assert float(out[next(key for key in out if key.startswith("best_cv_mae_V"))]) < 5
