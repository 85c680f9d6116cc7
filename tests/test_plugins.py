"""The plugin contract (docs/extending.md): a user's own method, model and dataset, in a package outside the
repository, selected by ``_target_`` in YAML files of the user's config dir, run through ``fairrun train``,
``fairrun eval``, a sweep beside the built-in methods and ``fairrun report``, like built-in ones."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from fairrun import rundir

REPO = Path(__file__).resolve().parents[1]

FOCAL = '''
from dataclasses import dataclass

import torch.nn.functional as F

from fairrun import Method


@dataclass
class FocalConfig:
    name: str = "focal"
    gamma: float = 2.0


class Focal(Method):
    """Focal loss (Lin et al., ICCV 2017)."""
    name = "focal"
    Config = FocalConfig

    def per_sample_loss(self, outputs, batch):
        ce = F.cross_entropy(outputs.logits.float(), batch.y, reduction="none")
        return (1 - (-ce).exp()) ** self.cfg.gamma * ce
'''

TINY = '''
from dataclasses import dataclass

from torch import nn

from fairrun import Classifier, ModelBuilder


@dataclass
class TinyConfig:
    name: str = "tiny"
    hidden: int = 16


class Tiny(ModelBuilder):
    name = "tiny"
    Config = TinyConfig

    @staticmethod
    def build(cfg, channels, image_size, num_classes):
        backbone = nn.Sequential(nn.Flatten(), nn.Linear(channels * image_size * image_size, cfg.hidden), nn.ReLU())
        return Classifier(backbone, cfg.hidden, num_classes)
'''

STRIPES = '''
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
import torch

from fairrun import Dataset, SplitData


@dataclass
class StripesConfig:
    name: str = "stripes"
    target: str = "striped"
    protected: str = "tint"
    image_size: int = 12
    n: int = 400
    seed: int = 0
    root: Optional[str] = None


def _split(cfg, n, seed):
    rng = np.random.default_rng(seed)
    striped = rng.integers(0, 2, n)
    tint = (rng.random(n) < 0.3).astype(np.int64)
    images = rng.integers(0, 100, (n, 3, cfg.image_size, cfg.image_size))
    images[striped == 1, :, ::2, :] += 120          # horizontal stripes: the target
    images[:, 0] += 30 * tint[:, None, None]        # a red tint: the protected attribute
    frame = pd.DataFrame({"striped": striped.astype(np.int64), "tint": tint})
    return SplitData(torch.from_numpy(images.clip(0, 255).astype(np.uint8)), frame,
                     {"striped": ["plain", "striped"], "tint": ["grey", "red"]})


class Stripes(Dataset):
    name = "stripes"
    Config = StripesConfig

    @staticmethod
    def read(cfg, workers=0):
        return {name: _split(cfg, cfg.n, cfg.seed * 10 + i) for i, name in enumerate(("train", "val", "test"))}

    @staticmethod
    def validate(cfg):
        if cfg.n < 50:
            raise ValueError(f"dataset.n={cfg.n!r} is invalid; it must be an integer >= 50.")
'''

YAMLS = {
    "method/focal.yaml": "_target_: mypkg.focal.Focal\nname: focal\ngamma: 2.0\n",
    "model/tiny.yaml": "_target_: mypkg.tiny.Tiny\nname: tiny\nhidden: 16\n",
    "dataset/stripes.yaml": "_target_: mypkg.stripes.Stripes\nname: stripes\ntarget: striped\nprotected: tint\n",
    "method/broken.yaml": "_target_: mypkg.nowhere.Missing\nname: broken\n",
    "method/clash.yaml": "_target_: mypkg.clash.Clash\nname: erm\n",
}
SHORT = ["trainer.epochs=2", "trainer.batch_size=64", "gpu=cpu", "eval.bootstrap=50"]


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A throwaway package (mypkg) and config dir (myconf) outside the repository; returns the folder."""
    root = tmp_path_factory.mktemp("user")
    (root / "mypkg").mkdir()
    (root / "mypkg" / "__init__.py").write_text("")
    for name, code in (("focal", FOCAL), ("tiny", TINY), ("stripes", STRIPES)):
        (root / "mypkg" / f"{name}.py").write_text(textwrap.dedent(code))
    (root / "mypkg" / "clash.py").write_text(textwrap.dedent(FOCAL).replace('"focal"', '"erm"').replace(
        "class Focal(Method)", "class Clash(Method)"))
    for name, text in YAMLS.items():
        (root / "myconf" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "myconf" / name).write_text(text)
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
    (["dataset=stripes", "dataset.n=10"], ["does not list the key 'n'", "StripesConfig", "+dataset.n=10"]),
    (["dataset=stripes", "+dataset.n=10"], ["dataset.n=10", ">= 50"]),
    (["model=tiny", "model.hidden=oops"], ["model.hidden", "oops"]),
])
def test_mistakes_with_a_users_entries_are_one_paragraph(user, tmp_path, args, words):
    proc = fairrun(user, "train", "--config-dir", "myconf", *args, *SHORT, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and one_paragraph(proc.stderr), proc.stderr[-3000:]
    text = " ".join(proc.stderr.split())
    assert all(w in text for w in words), proc.stderr[-3000:]
