"""Cross-dataset evaluation as the README shows it: `fairrun eval run_dir=RUN dataset=imdb_wiki ...` with
`dataset.test_fraction=1.0` (every image a test image, no val split needed), and the same as an
`eval_datasets` entry of `fairrun train`."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TINY_CNN, run_fairrun
from tests.helpers.fixtures_fairface import make_fairface
from tests.helpers.fixtures_imdb_wiki import make_imdb_clean_sheet

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]  # the README and the pages it links to
FAST = ["dataset.image_size=16", "trainer.epochs=1", "trainer.batch_size=32", "gpu=cpu", "eval.bootstrap=0",
        *TINY_CNN]
# The FairFace notebook's cleaned IMDB sheet names ethnicities in its own words; README maps them.
NOTEBOOK_WORDS = {"Asian": "asian", "Black": "african", "Indian": "indian", "White": "caucasian"}


def readme_command(start: str) -> list[str]:
    """The documented bash command (README.md or docs/*.md) that starts with ``start`` (continuation lines
    joined), split as a shell."""
    for page in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                if line.strip().startswith(start):
                    return shlex.split(line)
    raise AssertionError(f"README.md and docs/*.md have no bash command starting with {start!r}")


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRRUN_CACHE", str(tmp_path / "cache"))


def notebook_sheet(imdb_crop: Path, dest: Path) -> Path:
    """A cleaned IMDB sheet (XLSX) with the notebook's ethnicity words, listing images under ``imdb_crop``."""
    sheet = make_imdb_clean_sheet(imdb_crop, n=40, fmt="xlsx")
    frame = pd.read_excel(sheet, dtype=str)
    frame["Ethnicity"] = frame["Ethnicity"].str.strip().map(NOTEBOOK_WORDS)
    frame.to_excel(dest, index=False)
    return dest


def test_readme_imdb_cross_dataset_command_runs_as_written(tmp_path, own_cache):
    command = readme_command("fairrun eval run_dir=RUN dataset=imdb_wiki")
    assert "dataset.test_fraction=1.0" in command and "dataset.labels=imdb_clean.xlsx" in command
    imdb_crop = tmp_path / "imdb_crop"
    notebook_sheet(imdb_crop, tmp_path / "imdb_clean.xlsx")  # dataset.labels is relative to the launch folder
    value_map = next(a.split("=", 1)[1] for a in command if a.startswith("dataset.value_map="))
    # the same dataset as an eval_datasets entry of fairrun train: test_fraction 1.0 and the default
    # val_fraction (0.1) used to fail "val_fraction 0.1 plus test_fraction 1.0 exceed 1"
    entry = (f"eval_datasets=[{{name:imdb_wiki,root:'{imdb_crop}',labels:imdb_clean.xlsx,protected:ethnicity,"
             f"test_fraction:1.0,value_map:{value_map}}}]")
    fairface = make_fairface(tmp_path / "fairface", n_train=120, n_val=50)
    proc = run_fairrun("train", "dataset=fairface", f"dataset.root={fairface}", *FAST, entry,
                       "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = pd.read_pickle(tmp_path / "run" / "results.pkl")
    assert trained["split"].tolist() == ["val", "test", "imdb_wiki:test"]
    assert trained.iloc[2]["n"] == 40  # every image of the sheet is a test image

    args = [a.replace("run_dir=RUN", "run_dir=run").replace("/data/imdb_crop", str(imdb_crop))
            for a in command[1:]]
    proc = run_fairrun(*args, "gpu=cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    results = pd.read_pickle(tmp_path / "run" / "results.pkl")
    assert results["split"].tolist() == ["val", "test", "imdb_wiki:test"]  # replaced, not duplicated
    row = results.iloc[2]
    assert row["eval_target"] == "gender" and row["eval_protected"] == "ethnicity" and row["n"] == 40
    assert {f"acc[{group}]" for group in NOTEBOOK_WORDS} <= set(results.columns)
    assert sum(row[f"n[{group}]"] for group in NOTEBOOK_WORDS) == 40


def test_cross_dataset_val_fraction_gives_way_only_when_test_fraction_needs_it():
    from fairrun.data.utkface import UTKFaceConfig
    from fairrun.core.errors import ConfigError
    from fairrun.evaluation.transfer import eval_dataset_config

    run_dataset = UTKFaceConfig(root="/somewhere", image_size=16)
    every = eval_dataset_config({"name": "utkface", "root": "/x", "test_fraction": 1.0}, run_dataset)
    assert (every.val_fraction, every.test_fraction) == (0.0, 1.0)
    # an explicit val_fraction is not needed either: the val split is never read
    explicit = eval_dataset_config({"name": "utkface", "root": "/x", "test_fraction": 0.95,
                                    "val_fraction": 0.2}, run_dataset)
    assert explicit.val_fraction == pytest.approx(0.05)
    # fractions that fit are kept as given, so the carved test split is the usual one
    kept = eval_dataset_config({"name": "utkface", "root": "/x", "test_fraction": 0.5}, run_dataset)
    assert (kept.val_fraction, kept.test_fraction) == (0.1, 0.5)
    # out-of-range values are still named
    with pytest.raises(ConfigError, match="test_fraction"):
        eval_dataset_config({"name": "utkface", "root": "/x", "test_fraction": 1.5}, run_dataset)
