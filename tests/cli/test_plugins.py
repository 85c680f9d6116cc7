"""The plugin contract (docs/extending.md): a user's own method, model and dataset, in a package outside the
repository, selected by ``_target_`` in YAML files of the user's config dir, run through ``fairrun train``,
``fairrun eval``, a sweep beside the built-in methods and ``fairrun report``, like built-in ones; and the same
package installed as a distribution whose entry points (``fairrun.methods`` / ``models`` / ``datasets``) name
the classes, with its YAML inside the package."""
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

REPO = Path(__file__).resolve().parents[2]

DOCS = REPO / "docs" / "extending.md"


def documented_files() -> dict[str, str]:
    """The complete examples of docs/extending.md: every code block whose first line names its file
    (``# mypkg/focal.py``, ``# myconf/method/focal.yaml``, ``# pyproject.toml``), so the documented code is
    the tested code."""
    files = {}
    for block in re.findall(r"```(?:python|yaml|toml)\n(.*?)```", DOCS.read_text(), re.S):
        first, _, body = block.partition("\n")
        named = re.fullmatch(r"# ((?:mypkg|myconf|hydra_plugins)/[\w/]+\.(?:py|yaml)|pyproject\.toml)"
                             r"(?:[,:].*)?", first.strip())
        if named:
            files[named.group(1)] = body if named.group(1).endswith(".yaml") else block
    return files


def entry_point_tables(pyproject: str) -> dict[str, dict[str, str]]:
    """``group -> {name: value}`` of the ``[project.entry-points."<group>"]`` tables of a pyproject.toml."""
    tables: dict[str, dict[str, str]] = {}
    current = None
    for line in pyproject.splitlines():
        header = re.fullmatch(r"\[(.+)\]", line.strip())
        if header:
            group = re.fullmatch(r'project\.entry-points\."([^"]+)"', header.group(1))
            current = tables.setdefault(group.group(1), {}) if group else None
        elif current is not None and "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip().strip('"')
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        return tables
    assert tomllib.loads(pyproject)["project"]["entry-points"] == tables  # valid TOML, read the same way
    return tables


def write_distribution(site: Path, name: str, version: str, entry_points: dict[str, dict[str, str]]) -> None:
    """What ``pip install`` leaves beside a package: ``<name>-<version>.dist-info`` with its METADATA and
    entry_points.txt; importlib.metadata finds it on ``sys.path`` (here: on PYTHONPATH)."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items()) + "\n"
        for group, points in entry_points.items()))


MISTAKES = {  # YAMLs of the mistake tests, beside the documented ones
    "myconf/method/broken.yaml": "_target_: mypkg.nowhere.Missing\nname: broken\n",
    "myconf/method/clash.yaml": "_target_: mypkg.clash.Clash\nname: erm\n",
}
SHORT = ["trainer.epochs=2", "trainer.batch_size=64", "gpu=cpu", "eval.bootstrap=50"]


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A throwaway package (mypkg) and config dir (myconf) outside the repository; returns the folder."""
    root = tmp_path_factory.mktemp("user")
    files = {name: text for name, text in documented_files().items()
             if re.fullmatch(r"mypkg/\w+\.py|myconf/.+", name)}
    assert {"mypkg/focal.py", "mypkg/tiny.py", "mypkg/stripes.py", "myconf/method/focal.yaml",
            "myconf/model/tiny.yaml", "myconf/dataset/stripes.yaml"} <= set(files), sorted(files)
    files["mypkg/__init__.py"] = ""
    files["mypkg/clash.py"] = files["mypkg/focal.py"].replace('"focal"', '"erm"').replace(
        "class Focal(Method)", "class Clash(Method)")
    for name, text in {**files, **MISTAKES}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The documented package as pip installs it from the documented pyproject.toml: ``site/`` holds mypkg
    (its code, and its YAML in mypkg/conf/<group>/) and ``mypkg-0.1.dist-info`` with the pyproject's entry
    points; ``plugin/`` holds the documented Hydra search-path plugin. Returns the folder."""
    root = tmp_path_factory.mktemp("installed")
    docs = documented_files()
    plugin = "hydra_plugins/mypkg_searchpath.py"
    assert {"pyproject.toml", "mypkg/conf/method/focal.yaml", plugin} <= set(docs)
    files = {name: text for name, text in docs.items() if re.fullmatch(r"mypkg/\w+\.py", name)}
    files["mypkg/__init__.py"] = files["mypkg/conf/__init__.py"] = ""
    for name, text in docs.items():  # the package's YAML: the config dir's, without the _target_ line
        if name.startswith("myconf/"):
            files[f"mypkg/conf/{name[len('myconf/'):]}"] = "".join(
                f"{line}\n" for line in text.splitlines() if not line.startswith("_target_:"))
    for name, text in docs.items():  # the one the docs show is exactly that
        if name.startswith("mypkg/conf/"):
            assert text == files[name], name
    for name, text in files.items():
        (root / "site" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "site" / name).write_text(textwrap.dedent(text))
    groups = entry_point_tables(docs["pyproject.toml"])
    assert set(groups) == {"fairrun.methods", "fairrun.models", "fairrun.datasets"}, groups
    write_distribution(root / "site", "mypkg", "0.1", groups)
    (root / "plugin" / "hydra_plugins").mkdir(parents=True)
    (root / "plugin" / plugin).write_text(docs[plugin])
    return root


def fairrun(user: Path, *args: str, path: tuple[Path, ...] | None = None) -> subprocess.CompletedProcess:
    """``fairrun ARGS`` in ``user`` with ``path`` (default: ``user``, where mypkg lies) on PYTHONPATH."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([*map(str, path or (user,)), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "fairrun.cli", *args], cwd=user, env=env,
                          capture_output=True, text=True, timeout=300)


def one_paragraph(text: str) -> bool:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return bool(lines) and lines[0].startswith("fairrun") \
        and all(line.startswith("  ") for line in lines[1:]) and "Traceback" not in text


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
    resumed = fairrun(user, "train", "--config-dir", "myconf", "method=focal", "method.gamma=1.0",
                      "model=tiny", "dataset=stripes", *SHORT, "hydra.run.dir=run")  # already finished
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
    (["dataset=stripes", "dataset.seed=3"],
     ["does not list the key 'seed'", "StripesConfig", "+dataset.seed=3"]),
    (["dataset=stripes", "dataset.n=10"], ["dataset.n=10", ">= 50"]),
    (["model=tiny", "model.hidden=oops"], ["model.hidden", "oops"]),
])
def test_mistakes_with_a_users_entries_are_one_paragraph(user, tmp_path, args, words):
    proc = fairrun(user, "train", "--config-dir", "myconf", *args, *SHORT,
                   f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and one_paragraph(proc.stderr), proc.stderr[-3000:]
    text = " ".join(proc.stderr.split())
    assert all(w in text for w in words), proc.stderr[-3000:]


# -- installed as a package: entry points ---------------------------------------------------------------
ENTRY_POINT_RUN = ["method=focal", "method.gamma=1.0", "model=tiny", "dataset=stripes", *SHORT]


def test_an_installed_package_trains_and_evaluates_through_its_entry_points(installed):
    """No _target_ anywhere: the names are found through the distribution's entry points, the YAML through
    hydra.searchpath=[pkg://mypkg.conf]; fairrun eval finds the entry points again from the saved names."""
    site = (installed / "site",)
    proc = fairrun(installed, "train", "hydra.searchpath=[pkg://mypkg.conf]", *ENTRY_POINT_RUN,
                   "hydra.run.dir=run", path=site)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = rundir.read_results(installed / "run" / "results.pkl").set_index("split")
    assert (results.loc["test", ["method", "model", "dataset"]] == ["focal", "tiny", "stripes"]).all()
    assert results.loc["test", "accuracy"] > 0.8  # the plugins really trained
    saved = (installed / "run" / "run_config.yaml").read_text()
    assert "_target_" not in saved and "gamma: 1.0" in saved
    again = fairrun(installed, "eval", "run_dir=run", "gpu=cpu", path=site)
    assert again.returncode == 0, again.stderr[-3000:]
    evaluated = pd.read_pickle(installed / "run" / "eval_results.pkl").set_index("split")
    assert evaluated.loc["test", "accuracy"] == results.loc["test", "accuracy"]


def test_the_search_path_plugin_makes_an_installed_package_need_no_flag(installed, tmp_path):
    site, plugin = installed / "site", installed / "plugin"
    without = fairrun(installed, "train", *ENTRY_POINT_RUN, f"hydra.run.dir={tmp_path / 'none'}",
                      path=(site,))  # no YAML on the search path: Hydra cannot compose method=focal
    assert without.returncode == 2 and one_paragraph(without.stderr), without.stderr[-3000:]
    message = " ".join(without.stderr.split())
    assert "method=focal is installed" in message and "hydra.searchpath" in message, message
    proc = fairrun(installed, "train", *ENTRY_POINT_RUN, f"hydra.run.dir={tmp_path / 'run'}",
                   path=(site, plugin))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = rundir.read_results(tmp_path / "run" / "results.pkl").set_index("split")
    assert (results.loc["test", ["method", "model", "dataset"]] == ["focal", "tiny", "stripes"]).all()
    typo = fairrun(installed, "train", *ENTRY_POINT_RUN, "method.gama=1",
                   f"hydra.run.dir={tmp_path / 'typo'}", path=(site, plugin))
    assert typo.returncode == 2 and one_paragraph(typo.stderr), typo.stderr[-3000:]
    assert "unknown key 'method.gama'" in " ".join(typo.stderr.split())


BROKEN_PACKAGE = """
from dataclasses import dataclass

from fairrun import Method


@dataclass
class FineConfig:
    name: str = "fine"


class Fine(Method):
    name = "fine"
    Config = FineConfig


@dataclass
class OtherConfig:
    name: str = "other"


class Other(Method):
    name = "other"
    Config = OtherConfig
"""
BROKEN_POINTS = {  # entry point -> (its value, words its error must hold)
    "missing": ("brokenpkg.nowhere:Focal", ["ModuleNotFoundError", "brokenpkg.nowhere"]),
    "crash": ("brokenpkg.crash:Focal", ["RuntimeError: boom at import"]),
    "noattr": ("brokenpkg:Nothing", ["AttributeError", "Nothing"]),
    "notamethod": ("json:dumps", ["is not a method", "json.dumps has no 'name'",
                                  "subclass of fairrun.Method"]),
    "renamed": ("brokenpkg:Other", ["loads the method 'other'", "brokenpkg.Other", "must be that name"]),
}


def test_a_broken_entry_point_is_one_paragraph_naming_the_distribution_and_the_cause(tmp_path, monkeypatch):
    from fairrun.core.errors import ConfigError
    from fairrun.core.registry import Registry
    from fairrun.methods import METHODS

    (tmp_path / "brokenpkg").mkdir()
    (tmp_path / "brokenpkg" / "__init__.py").write_text(BROKEN_PACKAGE)
    (tmp_path / "brokenpkg" / "crash.py").write_text("raise RuntimeError('boom at import')\n")
    points = {name: value for name, (value, _) in BROKEN_POINTS.items()}
    points["fine"] = "brokenpkg:Fine"
    write_distribution(tmp_path, "brokenpkg", "0.2", {"fairrun.methods": points})
    monkeypatch.syspath_prepend(str(tmp_path))
    methods = Registry(METHODS.kind, METHODS.contract, METHODS.check)  # a fresh one: METHODS stays untouched
    methods.update(METHODS)
    try:
        assert set(methods.plugin_names()) == set(points) and "brokenpkg" not in sys.modules  # lazily
        for name, (value, words) in BROKEN_POINTS.items():
            with pytest.raises(ConfigError) as err:
                methods.resolve({"name": name})
            message = str(err.value)
            assert "\n" not in message and name not in methods, message
            assert f"entry point {name} = {value} (group fairrun.methods)" in message, message
            assert "distribution brokenpkg 0.2" in message, message
            assert "pip install --force-reinstall brokenpkg" in message, message
            assert all(word in message for word in words), message
        with pytest.raises(ConfigError) as err:
            methods.resolve({"name": "nope"})
        assert "erm" in str(err.value) and "renamed" in str(err.value) and "fairrun.methods" in str(err.value)
        assert methods["fine"].name == "fine" and "brokenpkg 0.2" in methods.plugins["fine"]  # registry[name]
        assert not methods.is_builtin("fine") and methods.target_of("fine") is None
        assert methods.is_builtin("erm")
    finally:
        for module in [m for m in sys.modules if m == "brokenpkg" or m.startswith("brokenpkg.")]:
            del sys.modules[module]
