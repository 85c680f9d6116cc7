"""Every config group option's schema in Hydra's ConfigStore: the dataclasses hold the defaults.

Hydra composes a run from config groups (``dataset=celeba``, ``method=groupdro``, ...). Each option of a
group is the schema of its code module: a dataset's, model's or method's ``Config`` dataclass (found
through their registries), :class:`~fairrun.core.sections.TrainerConfig`, ``GpuConfig``,
``ImbalanceConfig`` and :class:`~fairrun.evaluation.decision.PostprocessConfig`. They are stored twice:

- as ``schema/<group>/<option>``, always, so that a YAML preset can extend it (Hydra's "extending a
  structured config" pattern): ``defaults: [/schema/method/dpsgd@_here_, _self_]`` then only the keys
  that differ;
- as ``<group>/<option>`` itself, unless ``conf/<group>/<option>.yaml`` exists (that file is then the
  option, a preset on top of its schema).

So a default is written once, in its dataclass; a YAML file exists only where a preset differs from it
(``conf/gpu/cpu.yaml``: ``device: cpu``); a key misspelled in a YAML preset or given a value of the wrong
type fails when Hydra composes the config. ``conf/__init__.py`` calls :func:`register_configs`, so the
store is filled whenever Hydra reads fairrun's config package (the commands and the compose API alike).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore

from fairrun.config.run import DataReportConfig
from fairrun.core.sections import GpuConfig, ImbalanceConfig, TrainerConfig
from fairrun.data.registry import DATASETS
from fairrun.evaluation.decision import EvalConfig, PostprocessConfig
from fairrun.generative.gan import GanConfig
from fairrun.generative.minority import MinorityConfig
from fairrun.generative.vae import VaeConfig
from fairrun.methods import METHODS
from fairrun.studies.spec import StudyConfig
from fairrun.models import MODELS

SCHEMA_GROUP = "schema"


@dataclass
class TrainSchema:
    """`fairrun train`'s top level (``conf/train.yaml`` composes the groups into it)."""

    dataset: Any = None  # the dataset group: dataset=synthetic|celeba|fairface|utkface|imdb_wiki|csv
    model: Any = None  # the model group: model=cnn|mlp|logreg|resnet18|resnet34|resnet50
    method: Any = None  # the method group: method=erm|groupdro|... (docs/methods.md)
    trainer: Any = None  # the trainer group: optimisation settings
    gpu: Any = None  # the gpu group: gpu=auto|cpu|cuda
    imbalance: Any = None  # the imbalance group: imbalance=none|study
    postprocess: Any = None  # the postprocess group: postprocess=none|threshold
    arm: Optional[str] = None  # the arm's name (conf/arm/<name>.yaml sets it): the results column `arm`
    # run directory of a finished fairrun train run whose best.pt weights start this run (fine-tuning); null = none
    init_from: Optional[str] = None
    study: Optional[StudyConfig] = None  # set by +study=NAME (conf/study/): the study's name, --tiny and report settings
    seed: int = 0  # seeds weight init, batch order, dropout and imbalance sampling
    resume: bool = True  # continue from <run dir>/checkpoints/last.pt if present; false = start the run dir over
    eval: EvalConfig = field(default_factory=EvalConfig)  # how scores become decisions; bootstrap intervals
    # other datasets to test on after training, e.g. [{name: utkface, root: /data/UTKFace}]
    eval_datasets: List[Any] = field(default_factory=list)


@dataclass
class DataSchema(DataReportConfig):
    """`fairrun data`'s top level (``conf/data.yaml`` composes the dataset, imbalance and gpu groups into it)."""

    dataset: Any = None
    imbalance: Any = None
    gpu: Any = None
    out_dir: str = "${hydra:runtime.output_dir}"  # where counts.csv and the charts go (the run directory)


@dataclass
class VaeMinoritySchema(MinorityConfig):
    """`fairrun vae minority`'s top level (``conf/vae_minority.yaml`` composes the gpu group into it)."""

    gpu: Any = None  # the gpu group: gpu=auto|cpu|cuda


# The sections of the other commands' configs: fairrun gan train (gan.*) and fairrun vae train (vae.*).
COMMAND_SECTIONS = {"gan": GanConfig, "vae": VaeConfig}


def group_schemas() -> dict[str, dict[str, Any]]:
    """group -> option -> its schema (a dataclass, or an instance where options share one dataclass), for
    every built-in option (a user's own method, model or dataset brings its YAML; docs/extending.md)."""
    def builtin(registry) -> dict[str, Any]:
        options = {}
        for name, entry in sorted(registry.items()):
            if registry.is_builtin(name):  # options sharing a dataclass (resnet18/34/50) get their name
                options[name] = entry.Config if entry.Config().name == name else entry.Config(name=name)
        return options

    return {
        "dataset": builtin(DATASETS),
        "model": builtin(MODELS),
        "method": builtin(METHODS),
        "trainer": {"default": TrainerConfig},
        "gpu": {"auto": GpuConfig},
        "imbalance": {"none": ImbalanceConfig},
        "postprocess": {name: PostprocessConfig(name=name) for name in ("none", "threshold")},
    }


def preset_files(group: str) -> set[str]:
    """Names of the YAML presets of ``group`` shipped in fairrun's config package (``conf/<group>/``)."""
    folder = resources.files("fairrun.conf") / group
    if not folder.is_dir():
        return set()
    return {item.name[:-len(".yaml")] for item in folder.iterdir() if item.name.endswith(".yaml")}


def register_configs() -> None:
    """Store every schema (``schema/<group>/<option>``), every option without a YAML preset
    (``<group>/<option>``) and the top-level schemas of the commands (``train_schema``) in ConfigStore."""
    store = ConfigStore.instance()
    for group, options in group_schemas().items():
        presets = preset_files(group)
        for option, node in options.items():
            store.store(group=f"{SCHEMA_GROUP}/{group}", name=option, node=node)
            if option not in presets:
                store.store(group=group, name=option, node=node)
    store.store(name="train_schema", node=TrainSchema)
    for section, schema in COMMAND_SECTIONS.items():  # conf/gan.yaml: defaults [gan: default]
        store.store(group=section, name="default", node=schema)
    store.store(name="vae_minority_schema", node=VaeMinoritySchema)
    store.store(name="data_schema", node=DataSchema)


def option_names(group: str) -> list[str]:
    """Every built-in option of ``group``: its stored schemas and its YAML presets."""
    return sorted(set(group_schemas().get(group, {})) | preset_files(group))


def option_values(group: str, option: str) -> dict:
    """The keys ``group=option`` sets, without composing: its schema's defaults, updated by the keys its YAML
    preset lists (not the other groups a preset's defaults list selects); KeyError for an unknown option."""
    values = defaults_of(group, option) if option in group_schemas().get(group, {}) else {}
    if option in preset_files(group):
        import yaml

        data = yaml.safe_load((resources.files("fairrun.conf") / group / f"{option}.yaml").read_text()) or {}
        extends = [d for d in data.pop("defaults", []) if isinstance(d, str) and d != "_self_"]
        for base in extends:  # another option of the group, or the option's own schema
            name = base.rpartition("/")[2].split("@")[0]
            if not base.startswith("/schema/"):
                values = {**option_values(group, name), **values}
        values.update(data)
    if not values:
        raise KeyError(f"{group}={option}")
    return values


def schema_of(group: str, option: str) -> Any:
    """The dataclass that holds the defaults of ``group=option`` (a built-in option), or None."""
    node = group_schemas().get(group, {}).get(option)
    if node is None:
        return None
    return node if isinstance(node, type) else type(node)


def defaults_of(group: str, option: str) -> dict:
    """``group=option``'s keys and their default values, from its schema."""
    node = group_schemas()[group][option]
    instance = node() if isinstance(node, type) else node
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}


def schema_fields_by_name(class_name: str) -> list[str]:
    """The keys of the stored schema whose dataclass is called ``class_name`` (for error messages)."""
    for options in group_schemas().values():
        for node in options.values():
            schema = node if isinstance(node, type) else type(node)
            if schema.__name__ == class_name:
                return [f.name for f in dataclasses.fields(schema)]
    return []


def config_groups_text(groups: list[str]) -> str:
    """``--help``'s list of config groups: one line ``group: option, option, ...`` per group in ``groups``, with
    fairrun's options and those of every ``--config-dir`` on Hydra's search path (``DIR/<group>/*.yaml``).

    Hydra's own list (``$APP_CONFIG_GROUPS``) builds a config repository per group option, each a deep copy of
    the ConfigStore (over 150 copies: 6-15 s per ``--help``), and lists internal groups (``schema/*``) and other
    commands' groups; this one reads file names."""
    from pathlib import Path

    extra_dirs = []
    try:
        from hydra.core.hydra_config import HydraConfig

        for source in HydraConfig.get().runtime.config_sources:
            if source.schema == "file" and source.provider != "hydra":
                extra_dirs.append(Path(source.path))
    except Exception:  # noqa: BLE001 - outside a Hydra app: fairrun's own options only
        pass
    lines = []
    for group in groups:
        names = set(option_names(group))
        for directory in extra_dirs:
            names |= {p.stem for p in (directory / group).glob("*.yaml")}
        lines.append(f"{group}: {', '.join(sorted(names))}")
    return "\n".join(lines)
