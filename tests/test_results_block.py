"""The README's results block quotes the numbers of reports/quick's CSVs, the ones its figures show."""

import re
import shutil

import pandas as pd
import pytest

from stnet_lib.experiments.results_block import BEGIN, END, noise_ratios, noise_sentence, results_block, update_readme
from stnet_lib.paths import REPORTS_DIR, ROOT
from stnet_lib.profiles import PROFILES

QUICK = REPORTS_DIR / "quick"


def _block(text: str) -> str:
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "the README's results block markers"
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def test_the_readme_block_is_the_one_generated_from_the_committed_csvs():
    """Regenerating reports/quick without the README (or editing the block by hand) fails here."""
    assert _block((ROOT / "README.md").read_text()) == results_block(QUICK, PROFILES["quick"])


def test_the_block_quotes_the_csvs_numbers():
    """Independently of the generator's code paths: a few numbers recomputed from the CSVs appear in it."""
    block = results_block(QUICK, PROFILES["quick"])
    table1 = pd.read_csv(QUICK / "table1.csv", dtype=str).set_index(["method", "source"])
    dice = float(table1.loc[("ST-Net", "ours"), "Dice"].split()[0])
    assert f"| Dice | {dice:.3f} |" in block
    noise = pd.read_csv(QUICK / "baselines_noise.csv").set_index(["snr", "method"])
    ratio = noise.loc[(20.0, "ttv"), "cbf_rmse"] / min(noise.loc[(20.0, m), "cbf_rmse"] for m in ("ssvd", "csvd", "osvd"))
    assert re.search(rf"is {round(100 * (1 - ratio))} %, \d+ % and \d+ % below the best SVD method's at SNR 20, 10, 5", block)
    seconds = pd.read_csv(QUICK / "timing.csv").set_index("method").loc["stnet", "seconds_per_10k_voxels"]
    assert f"| {seconds:.3f} | 0.77 |" in block


def test_noise_ratios_follow_issue_7s_definitions():
    table = pd.DataFrame({"snr": [20.0] * 4 + [5.0] * 4, "method": ["ssvd", "csvd", "osvd", "ttv"] * 2,
                          "cbf_rmse": [14.0, 12.0, 16.0, 9.0, 20.0, 30.0, 25.0, 22.0],
                          "noise_cbf_rmse": [4.0, 5.0, 6.0, 2.0, 10.0, 12.0, 8.0, 9.0],
                          "tmax_mae_s": [1.0, 2.0, 3.0, 1.5, 9.0, 4.0, 5.0, 2.0]})
    ratios = noise_ratios(table)
    assert list(ratios.index) == [20.0, 5.0]
    assert ratios["truth"].tolist() == pytest.approx([9 / 12, 22 / 20])
    assert ratios["noise"].tolist() == pytest.approx([2 / 4, 9 / 8])
    assert ratios["tmax"].tolist() == pytest.approx([1.5 / 2, 2 / 4])  # cSVD and oSVD only: sSVD's 1.0 not used
    sentence = noise_sentence(table, PROFILES["quick"])
    assert "25 % below and 10 % above the best SVD method's at SNR 20, 5" in sentence
    assert "50 % below and 12 % above the least noisy SVD method's" in sentence
    assert noise_sentence(table[table["method"] != "ttv"], PROFILES["quick"]) == ""


def test_update_readme_rewrites_only_the_block(tmp_path):
    report = tmp_path / "quick"
    shutil.copytree(QUICK, report, ignore=shutil.ignore_patterns("notebooks", "*.png", "*.md"))
    noise = pd.read_csv(report / "baselines_noise.csv")
    noise.loc[(noise["snr"] == 20.0) & (noise["method"] == "ttv"), "cbf_rmse"] = 1.0
    noise.to_csv(report / "baselines_noise.csv", index=False)
    best_svd = noise[(noise["snr"] == 20.0) & noise["method"].isin(["ssvd", "csvd", "osvd"])]["cbf_rmse"].min()
    expected = f"is {100 * (1 - 1.0 / best_svd):.0f} %,"  # TTV's RMSE 1.0 against the best SVD method's
    readme = tmp_path / "README.md"
    readme.write_text(f"# before\n\n{BEGIN}\nstale numbers: 47 %, 51 % and 5 %\n{END}\n\nafter\n")
    assert update_readme(readme, report, PROFILES["quick"])
    text = readme.read_text()
    assert text.startswith("# before\n\n") and text.endswith(f"{END}\n\nafter\n") and "stale" not in text
    assert _block(text) == results_block(report, PROFILES["quick"]) and expected in _block(text), expected
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no block here\n")
    assert not update_readme(plain, report, PROFILES["quick"]) and plain.read_text() == "no block here\n"
