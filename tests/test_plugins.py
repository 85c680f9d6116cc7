"""The plugin contract (docs/extending.md): a user's own method, model and dataset, in a package outside the
repository, selected by ``_target_`` in YAML files of the user's config dir, run through ``fairrun train``,
``fairrun eval``, a sweep beside the built-in methods and ``fairrun report``, like built-in ones."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from fairrun import rundir

REPO = Path(__file__).resolve().parents[1]

DOCS = REPO / "docs" / "extending.md"


def documented_files() -> dict[str, str]:
    """The complete examples of docs/extending.md: every code block whose first line names its file
    (``# mypkg/focal.py``, ``# myconf/method/focal.yaml``), so the documented code is the tested code."""
    files = {}
    for block in re.findall(r"```(?:python|yaml)\n(.*?)```", DOCS.read_text(), re.S):
        first, _, body = block.partition("\n")
        named = re.fullmatch(r"# (mypkg/\w+\.py|myconf/\w+/\w+\.yaml)(?:,.*)?", first.strip())
        if named:
            files[named.group(1)] = body if named.group(1).endswith(".yaml") else block
    return files


MISTAKES = {  # YAMLs of the mistake tests, beside the documented ones
    "myconf/method/broken.yaml": "_target_: mypkg.nowhere.Missing\nname: broken\n",
    "myconf/method/clash.yaml": "_target_: mypkg.clash.Clash\nname: erm\n",
}
SHORT = ["trainer.epochs=2", "trainer.batch_size=64", "gpu=cpu", "eval.bootstrap=50"]


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A throwaway package (mypkg) and config dir (myconf) outside the repository; returns the folder."""
    root = tmp_path_factory.mktemp("user")
    files = documented_files()
    assert {"mypkg/focal.py", "mypkg/tiny.py", "mypkg/stripes.py", "myconf/method/focal.yaml",
            "myconf/model/tiny.yaml", "myconf/dataset/stripes.yaml"} <= set(files), sorted(files)
    files["mypkg/__init__.py"] = ""
    files["mypkg/clash.py"] = files["mypkg/focal.py"].replace('"focal"', '"erm"').replace(
        "class Focal(Method)", "class Clash(Method)")
    for name, text in {**files, **MISTAKES}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def fairrun(user: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(user), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "fairrun.cli", *args], cwd=user, env=env, capture_output=True,
                          text=True, timeout=300)


def one_paragraph(text: str) -> bool:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return bool(lines) and lines[0].startswith("fairrun") and all(line.startswith("  ") for line in lines[1:]) \
        and "Traceback" not in text


def test_a_users_method_model_and_dataset_train_evaluate_and_reproduce(user):
    proc = fairrun(user, "train", "--config-dir", "myconf", "method=focal", "method.gamma=1.0", "model=tiny",
                   "dataset=stripes", *SHORT, "hydra.run.dir=run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = rundir.read_results(user / "run" / "results.pkl").set_index("split")
    assert results.loc["test", "method"] == "focal" and results.loc["test", "model"] == "tiny"
    assert results.loc["test", "dataset"] == "stripes"
    assert results.loc["test", "accuracy"] > 0.8  # the stripes are easy: the plugins really trained
    saved = (user / "run" / "run_config.yaml").read_text()
    for target in ("mypkg.focal.Focal", "mypkg.tiny.Tiny", "mypkg.stripes.Stripes"):
        assert f"_target_: {target}" in saved
    again = fairrun(user, "eval", "run_dir=run", "gpu=cpu")  # reloads run_config.yaml: imports the plugins
    assert again.returncode == 0, again.stderr[-3000:]
    evaluated = pd.read_pickle(user / "run" / "eval_results.pkl").set_index("split")
    assert evaluated.loc["test", "accuracy"] == results.loc["test", "accuracy"]
    resumed = fairrun(user, "train", "--config-dir", "myconf", "method=focal", "method.gamma=1.0", "model=tiny",
                      "dataset=stripes", *SHORT, "hydra.run.dir=run")  # the same run: already finished
    assert resumed.returncode == 0, resumed.stderr[-3000:]


def test_a_users_method_sweeps_beside_built_in_ones_and_reports(user):
    proc = fairrun(user, "train", "-m", "--config-dir", "myconf", "method=erm,focal,groupdro", "model=tiny",
                   "dataset=stripes", *SHORT, "hydra.sweep.dir=sweep")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = fairrun(user, "report", "sweep", "--by", "method", "--out", "report")
    assert report.returncode == 0, report.stderr[-3000:]
    table = pd.read_csv(user / "report" / "table.csv")
    assert sorted(table["method"]) == ["erm", "focal", "groupdro"]
    assert "focal" in report.stdout


@pytest.mark.parametrize("args, words", [
    (["method=focal", "method.gama=1"], ["unknown key 'method.gama'", "method=focal", "gamma"]),
    (["method=broken"], ["mypkg.nowhere.Missing", "mypkg.nowhere", "PYTHONPATH"]),
    (["method=clash"], ["erm", "already the built-in method", "another name"]),
    (["dataset=stripes", "dataset.seed=3"], ["does not list the key 'seed'", "StripesConfig", "+dataset.seed=3"]),
    (["dataset=stripes", "dataset.n=10"], ["dataset.n=10", ">= 50"]),
    (["model=tiny", "model.hidden=oops"], ["model.hidden", "oops"]),
])
def test_mistakes_with_a_users_entries_are_one_paragraph(user, tmp_path, args, words):
    proc = fairrun(user, "train", "--config-dir", "myconf", *args, *SHORT, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and one_paragraph(proc.stderr), proc.stderr[-3000:]
    text = " ".join(proc.stderr.split())
    assert all(w in text for w in words), proc.stderr[-3000:]
