"""The studies fairrun knows (``conf/study/`` and a user's ``--config-dir``), each composed to read its ``study``
node, its axes and its jobs without running anything."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fairrun.core.errors import FairrunError
from fairrun.core.validation import did_you_mean


@dataclass
class StudyPlan:
    """One study as a launch would run it: its composed config (with ``hydra``) and every job's overrides."""

    name: str
    config: DictConfig  # the composed config of the launch (its sweeper params, study node, sweep dir)
    overrides: list[str]  # the command line handed to fairrun train -m, +study=NAME first
    jobs: list[list[str]]  # every job's overrides, in Hydra's job-number order

    @property
    def study(self) -> DictConfig:
        return self.config.study

    @property
    def axes(self) -> dict[str, list[str]]:
        """Swept key -> its values, over the sweeper's params and the command line's sweep overrides."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = OmegaConf.to_container(self.config.hydra.sweeper.params, resolve=True) \
            if self.config.hydra.sweeper.get("params") else {}
        lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(self.overrides)
        axes = {}
        for override in OverridesParser.create().parse_overrides(lines):  # the command line's come last and win
            key = override.get_key_element()
            if override.is_sweep_override():
                axes[key] = [str(v) for v in override.sweep_string_iterator()]
            else:
                axes.pop(key, None)
        return axes

    @property
    def sweep_dir(self) -> Path:
        return Path(str(self.config.hydra.sweep.dir))


def study_names(config_dirs: list[str] = ()) -> list[str]:
    """The options of the ``study`` config group: fairrun's own (``conf/study/``) and those in each
    ``--config-dir`` (``DIR/study/*.yaml``)."""
    names = set()
    folder = resources.files("fairrun.conf") / "study"
    if folder.is_dir():
        names |= {p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")}
    for directory in config_dirs:
        names |= {p.stem for p in (Path(directory) / "study").glob("*.yaml")}
    return sorted(names)


def compose_launch(overrides: list[str], config_dirs: list[str] = ()) -> DictConfig:
    """The config a ``fairrun train -m <overrides>`` launch composes (with ``hydra``), sweep overrides left
    to the sweeper as Hydra does."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    plain = [o.input_line for o in parsed if not o.is_sweep_override()]
    search = [f"hydra.searchpath=[{','.join('file://' + str(Path(d).resolve()) for d in config_dirs)}]"] \
        if config_dirs else []
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        return compose(config_name="train", overrides=plain + search, return_hydra_config=True)


def compose_job(job: list[str], config_dirs: list[str] = ()) -> DictConfig:
    """One job's task config (what fairrun train receives), without the ``hydra`` node."""
    config = compose_launch(job, config_dirs)
    with_hydra = OmegaConf.to_container(config, resolve=False)
    with_hydra.pop("hydra", None)
    return OmegaConf.create(with_hydra)


def plan(name: str, overrides: list[str], config_dirs: list[str] = ()) -> StudyPlan:
    """The launch of study ``name`` with ``overrides`` (tiny overrides included by the caller): its composed
    config and its jobs. FairrunError naming the known studies for an unknown name, and one paragraph for a
    config that does not compose."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from fairrun.report.collect import expand_sweep

    known = study_names(config_dirs)
    if name not in known:
        raise FairrunError(f"unknown study {name!r}.{did_you_mean(name, known)} Studies: {', '.join(known)} (fairrun study --list says what "
                           f"each reproduces; a study of your own is a YAML in --config-dir DIR/study/).")
    line = [f"+study={name}", *overrides]
    try:
        config = compose_launch(line, config_dirs)
    except (HydraException, OmegaConfBaseException) as err:
        raise FairrunError(f"study {name} with {' '.join(overrides) or 'no overrides'} does not compose: "
                           f"{' '.join(str(err).split())}") from None
    if config.get("study") is None:
        raise FairrunError(f"conf/study/{name}.yaml sets no 'study' node (study.name, study.reproduces, "
                           f"study.tiny, study.report): it is not a study. See docs/studies/index.md.")
    params = OmegaConf.to_container(config.hydra.sweeper.params, resolve=True) \
        if config.hydra.sweeper.get("params") else {}
    jobs = expand_sweep(params, line)
    return StudyPlan(name=name, config=config, overrides=line, jobs=jobs)


def describe(name: str, config_dirs: list[str] = ()) -> tuple[str, int, dict]:
    """(what it reproduces, job count at full size, axes) of study ``name``."""
    launch = plan(name, [], config_dirs)
    return str(launch.study.reproduces), len(launch.jobs), launch.axes
