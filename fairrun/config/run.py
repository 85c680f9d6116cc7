"""The validated run configuration.

Hydra composes ``conf/`` into a DictConfig; :func:`validate_run_config` checks it against typed
dataclass schemas (one per config group option, found through the dataset, model and method
registries) and explicit range and cross-key rules, and returns plain dataclasses. Every problem is
raised as a :class:`~fairrun.core.errors.ConfigError` naming the key, the value and what is accepted.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import fairrun.core.resolvers  # noqa: F401  (`${unless_set:...}` of conf/method/dpsgd.yaml and friends; see there)
from fairrun.data.registry import DATASETS, validate_dataset_config, validate_dataset_section
from fairrun.evaluation.decision import EvalConfig, PostprocessConfig
from fairrun.methods import METHODS
from fairrun.models import MODELS
from fairrun.core.errors import ConfigError
from fairrun.core.fingerprint import fingerprint
from fairrun.core.sections import (GpuConfig, ImbalanceConfig, TrainerConfig, normalise_amp, validate_gpu,
                              validate_imbalance, validate_trainer)
from fairrun.core.validation import require, typed_section

# Keys added after fairrun 1.0, each with the value that gives the behaviour from before it existed: left out of
# the fingerprint while at that value, so that runs written before (an unfinished run's last.pt, a finished run)
# still match. trainer.precise_bn's default (200) changed the behaviour: an earlier unfinished run resumes only
# with trainer.precise_bn=0, which is what it was trained with.
KEYS_ADDED_LATER = {("trainer", "select"): "accuracy", ("trainer", "patience"): None,
                    ("trainer", "precise_bn"): 0, ("imbalance", "splits"): ["train"]}


@dataclass
class RunConfig:
    """A fully validated run: every section is a dataclass instance."""

    dataset: Any
    model: Any
    method: Any
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    gpu: GpuConfig = field(default_factory=GpuConfig)
    imbalance: ImbalanceConfig = field(default_factory=ImbalanceConfig)
    seed: int = 0
    resume: bool = True
    eval_datasets: list = field(default_factory=list)  # other datasets to test on after training
    eval: Any = None  # fairrun.evaluation.decision.EvalConfig: the decision threshold
    postprocess: Any = None  # fairrun.evaluation.decision.PostprocessConfig: threshold post-processing
    # the arm's name (conf/arm/<name>.yaml): a label of the run, the results column `arm`; not in the fingerprint
    arm: Optional[str] = None
    # run directory of a finished fairrun train run whose best.pt weights start this run (fine-tuning); null = none
    init_from: Optional[str] = None
    # section -> the _target_ of a user's own dataset / model / method (fairrun.core.registry); empty for built-ins
    targets: dict = field(default_factory=dict)

    def __post_init__(self):
        self.eval = self.eval if self.eval is not None else EvalConfig()
        self.postprocess = self.postprocess if self.postprocess is not None else PostprocessConfig()

    def to_dict(self) -> dict:
        """The run config as plain nested dicts (for logging, hashing, results rows and run_config.yaml); a
        user's dataset, model or method keeps its ``_target_`` first in its section."""
        plain = dataclasses.asdict(self)
        for section, target in plain.pop("targets").items():
            plain[section] = {"_target_": target, **plain[section]}
        return plain

    def fingerprint(self) -> str:
        """A hash of everything that changes a run's results (not ``resume`` nor worker counts)."""
        relevant = self.to_dict()
        relevant.pop("resume")
        relevant.pop("eval_datasets")  # extra evaluations do not change the trained model
        relevant.pop("arm")  # a name: the same settings under another arm's name are the same run
        if relevant.get("init_from") is None:  # added later: runs of earlier versions keep their hash
            relevant.pop("init_from", None)
        relevant["gpu"].pop("num_workers")
        relevant["gpu"].pop("data_on_device")
        for (section, key), default in KEYS_ADDED_LATER.items():  # runs of earlier versions keep their hash
            if relevant[section].get(key, default) == default:
                relevant[section].pop(key, None)
        return fingerprint(relevant)


def validate_run_config(cfg: DictConfig) -> RunConfig:
    """Check a composed Hydra config and return the typed :class:`RunConfig`.

    Checks key names and types per section, value ranges, and cross-key rules (e.g. protected
    attribute different from target). Raises :class:`ConfigError` with one clear paragraph.
    """
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    OmegaConf.set_struct(cfg, False)
    allowed_top = {"dataset", "model", "method", "trainer", "gpu", "imbalance", "seed", "resume", "eval_datasets",
                   "eval", "postprocess", "arm", "init_from", "study"}
    unknown = sorted(set(cfg.keys()) - allowed_top)
    if unknown:
        raise ConfigError(
            f"Unknown top-level key(s) {', '.join(unknown)}. Accepted: {', '.join(sorted(allowed_top))}."
        )
    if cfg.get("gpu") is not None:
        normalise_amp(cfg.gpu)
    dataset = DATASETS.typed(cfg.get("dataset"))
    model = MODELS.typed(cfg.get("model"))
    method = METHODS.typed(cfg.get("method"))
    targets = {section: registry.target_of(value.name) for section, registry, value in
               (("dataset", DATASETS, dataset), ("model", MODELS, model), ("method", METHODS, method))}
    trainer = typed_section("trainer", TrainerConfig, cfg.get("trainer"))
    gpu = typed_section("gpu", GpuConfig, cfg.get("gpu"))
    imbalance = typed_section("imbalance", ImbalanceConfig, cfg.get("imbalance"))
    seed = cfg.get("seed", 0)
    require(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", seed,
            "an integer >= 0")
    resume = cfg.get("resume", True)
    require(isinstance(resume, bool), "resume", resume, "true or false")
    arm = cfg.get("arm")
    require(arm is None or (isinstance(arm, str) and arm.strip() != ""), "arm", arm,
            "null or an arm's name (an option of conf/arm/, e.g. arm=erm)")
    init_from = cfg.get("init_from")
    require(init_from is None or (isinstance(init_from, str) and init_from.strip() != ""), "init_from", init_from,
            "null or the run directory of a finished fairrun train run (its checkpoints/best.pt)")
    validate_trainer(trainer)
    validate_gpu(gpu)
    validate_imbalance(imbalance)
    validate_dataset_config(dataset)
    for section in (model, method):
        if hasattr(section, "validate"):
            section.validate()
    eval_datasets = _validate_eval_datasets(cfg.get("eval_datasets") or [], dataset)
    evaluation = typed_section("eval", EvalConfig, cfg.get("eval"))
    postprocess = typed_section("postprocess", PostprocessConfig, cfg.get("postprocess"))
    evaluation.validate()
    postprocess.validate()
    run = RunConfig(dataset=dataset, model=model, method=method, trainer=trainer, gpu=gpu,
                    imbalance=imbalance, seed=seed, resume=resume, eval_datasets=eval_datasets,
                    eval=evaluation, postprocess=postprocess, arm=arm, init_from=init_from,
                    targets={section: target for section, target in targets.items() if target})
    if hasattr(method, "validate_run"):  # cross-section rules of a method (e.g. DP-SGD and gpu.amp)
        method.validate_run(run)
    return run


def _validate_eval_datasets(entries: Any, dataset: Any) -> list:
    """``eval_datasets``: a list of dataset names or {name: ..., key: value} mappings, each checked."""
    from fairrun.evaluation.transfer import entry_dict, eval_dataset_config

    if isinstance(entries, (str, dict, DictConfig)):
        entries = [entries]
    if not isinstance(entries, (list, ListConfig)):
        raise ConfigError(f"Invalid value for 'eval_datasets': {entries!r}. Expected a list of dataset names "
                          f"or mappings, e.g. eval_datasets=[{{name:utkface,root:/data/UTKFace}}].")
    plain = [entry_dict(e) for e in entries]
    for entry in plain:
        eval_dataset_config(entry, dataset)
    return plain


def load_run_config(path: Path) -> RunConfig:
    """Read and validate a run config saved by `fairrun train` (``run_config.yaml``).

    Its checksum is verified (fairrun.rundir); a missing, damaged, empty or foreign file is a
    ConfigError naming the file and the cure.
    """
    from fairrun import rundir

    path = Path(path)
    text = rundir.read_text(path)
    cure = rundir.cure_for(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        raise ConfigError(f"{path} is not valid YAML{at} ({getattr(err, 'problem', None) or 'unparsable'}): "
                          f"it is damaged or was not written by fairrun train. {cure}") from None
    if data is None:
        raise ConfigError(f"{path} is empty: it is damaged or was not written by fairrun train. {cure}")
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds a YAML {type(data).__name__}, not the mapping of config sections "
                          f"that fairrun train writes. {cure}")
    for (section, key), before in KEYS_ADDED_LATER.items():  # written before the key existed: as it ran then
        if isinstance(data.get(section), dict) and key not in data[section]:
            data[section][key] = before
    try:
        return validate_run_config(OmegaConf.create(data))
    except (ConfigError, OmegaConfBaseException, ValueError, TypeError, KeyError, AttributeError) as err:
        raise ConfigError(f"{path} is not a run config that this fairrun can use ({err}). {cure}") from None


@dataclass
class DataReportConfig:
    """`fairrun data`: the dataset, the imbalance setting applied to train, and the report's keys."""

    dataset: Any  # the dataset group: dataset=NAME (required)
    imbalance: Any  # the imbalance group, applied to the training split as in fairrun train
    gpu: Any  # the gpu group (gpu.num_workers: decoding processes if the cache must be built)
    seed: int = 0  # the imbalance sampling seed (as in fairrun train)
    # other datasets whose group frequencies join the chart, e.g. [{name: imdb_wiki, root: /data/imdb_crop}]
    compare: List[Any] = field(default_factory=list)
    samples: int = 32  # images in the sample grid (from the training set actually used)


def validate_data_report_config(cfg: DictConfig) -> DataReportConfig:
    """Check `fairrun data`'s composed config; raises ConfigError naming a bad key."""
    from fairrun.evaluation.transfer import entry_dict

    dataset = validate_dataset_section(cfg.dataset)
    if cfg.get("gpu") is not None:
        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
        normalise_amp(cfg.gpu)
    imbalance = typed_section("imbalance", ImbalanceConfig, cfg.get("imbalance"))
    validate_imbalance(imbalance)
    gpu = typed_section("gpu", GpuConfig, cfg.get("gpu"))
    validate_gpu(gpu)
    defaults = DataReportConfig(dataset=None, imbalance=None, gpu=None)
    seed, samples = cfg.get("seed", defaults.seed), cfg.get("samples", defaults.samples)
    require(isinstance(seed, int) and seed >= 0, "seed", seed, "an integer >= 0")
    require(isinstance(samples, int) and 1 <= samples <= 256, "samples", samples, "an integer from 1 to 256")
    compare = cfg.get("compare") or []
    if isinstance(compare, (str, dict, DictConfig)):
        compare = [compare]
    return DataReportConfig(dataset=dataset, imbalance=imbalance, gpu=gpu, seed=seed,
                            compare=[entry_dict(e) for e in compare], samples=samples)
