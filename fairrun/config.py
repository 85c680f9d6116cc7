"""The validated run configuration.

Hydra composes ``conf/`` into a DictConfig; :func:`validate_run_config` checks it against typed
dataclass schemas (one per config group option, found through the dataset, model and method
registries) and explicit range and cross-key rules, and returns plain dataclasses. Every problem is
raised as a :class:`~fairrun.errors.ConfigError` naming the key, the value and what is accepted.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

import fairrun.resolvers  # noqa: F401  (`${unless_set:...}` of conf/method/dpsgd.yaml and friends; see there)
from fairrun.decision import EvalConfig, PostprocessConfig
from fairrun.errors import ConfigError

AMP_MODES = ("off", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
DATA_ON_DEVICE = ("auto", "true", "false")
OPTIMIZERS = ("adam", "sgd")
SCHEDULERS = ("none", "step", "cosine")


@dataclass
class TrainerConfig:
    """Optimisation settings (``trainer.*``)."""

    epochs: int = 5
    batch_size: int = 128
    eval_batch_size: int = 512
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "none"
    gamma: float = 0.9
    eval_every: int = 1


@dataclass
class GpuConfig:
    """Device settings (``gpu.*``); AMP and channels_last apply on CUDA only."""

    device: str = "auto"
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    num_workers: int = 0  # image-decoding processes when a dataset cache is built (0 = one per core)
    data_on_device: str = "auto"  # keep the training images on the GPU: auto (if they fit) | true | false


@dataclass
class ImbalanceConfig:
    """Training-set imbalance (``imbalance.*``): ``ratio`` is the majority group's share (null = as is)."""

    ratio: Optional[float] = None
    majority: Optional[str] = None
    size: Optional[int] = None
    balance_target: bool = False  # keep the target classes equally frequent inside every group


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
    eval: Any = None  # fairrun.decision.EvalConfig: the decision threshold
    postprocess: Any = None  # fairrun.decision.PostprocessConfig: threshold post-processing

    def __post_init__(self):
        self.eval = self.eval if self.eval is not None else EvalConfig()
        self.postprocess = self.postprocess if self.postprocess is not None else PostprocessConfig()

    def to_dict(self) -> dict:
        """The run config as plain nested dicts (for logging, hashing and results rows)."""
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A hash of everything that changes a run's results (not ``resume`` nor worker counts)."""
        relevant = self.to_dict()
        relevant.pop("resume")
        relevant.pop("eval_datasets")  # extra evaluations do not change the trained model
        relevant["gpu"].pop("num_workers")
        relevant["gpu"].pop("data_on_device")
        blob = json.dumps(relevant, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def typed_section(section: str, schema: type, node: Any) -> Any:
    """Merge ``node`` into the dataclass ``schema`` and return an instance, or raise ConfigError.

    Catches unknown keys and wrong types (OmegaConf structured-config checks) and rephrases them as
    one sentence naming the full key (``section.key``), the offending value and what is accepted.
    """
    if node is None:
        node = {}
    if not isinstance(node, (dict, DictConfig)):
        raise ConfigError(f"'{section}' must be a mapping of keys, got {node!r}.")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node))
    except ConfigKeyError as err:
        accepted = ", ".join(f.name for f in dataclasses.fields(schema))
        raise ConfigError(f"Unknown key '{section}.{err.key}'. The keys accepted in '{section}' are: "
                          f"{accepted}.") from None
    except OmegaConfBaseException as err:
        full_key = str(getattr(err, "full_key", None) or err.key)
        top = full_key.split("[")[0].split(".")[0]
        value = OmegaConf.select(OmegaConf.create(node), full_key, default="?")
        declared = {f.name: f.type for f in dataclasses.fields(schema)}.get(top, "the declared type")
        raise ConfigError(f"Invalid value for '{section}.{full_key}': {value!r}. Expected "
                          f"{getattr(declared, '__name__', declared)}.") from None


def require(ok: bool, key: str, value: Any, accepted: str) -> None:
    """Raise ConfigError("Invalid value for 'key': value. Accepted: ...") unless ``ok``."""
    if not ok:
        raise ConfigError(f"Invalid value for '{key}': {value!r}. Accepted: {accepted}.")


def require_choice(key: str, value: Any, choices: tuple) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    require(value in choices, key, value, "one of " + ", ".join(map(str, choices)))


def _validate_trainer(t: TrainerConfig) -> None:
    require(t.epochs >= 1, "trainer.epochs", t.epochs, "an integer >= 1")
    require(t.batch_size >= 1, "trainer.batch_size", t.batch_size, "an integer >= 1")
    require(t.eval_batch_size >= 1, "trainer.eval_batch_size", t.eval_batch_size, "an integer >= 1")
    require(math.isfinite(t.lr) and t.lr > 0, "trainer.lr", t.lr, "a finite number > 0, e.g. 0.001")
    require(math.isfinite(t.weight_decay) and t.weight_decay >= 0, "trainer.weight_decay", t.weight_decay,
            "a finite number >= 0, e.g. 0 or 1e-4")
    require(0 <= t.momentum < 1, "trainer.momentum", t.momentum, "a number in [0, 1)")
    require(0 < t.gamma <= 1, "trainer.gamma", t.gamma, "a number in (0, 1]")
    require(t.eval_every >= 1, "trainer.eval_every", t.eval_every, "an integer >= 1")
    require_choice("trainer.optimizer", t.optimizer, OPTIMIZERS)
    require_choice("trainer.scheduler", t.scheduler, SCHEDULERS)


def _validate_gpu(g: GpuConfig) -> None:
    require_choice("gpu.device", g.device, DEVICES)
    require_choice("gpu.amp", g.amp, AMP_MODES)
    require(g.num_workers >= 0, "gpu.num_workers", g.num_workers, "an integer >= 0 (0 = one per core)")
    require_choice("gpu.data_on_device", g.data_on_device, DATA_ON_DEVICE)


def _validate_imbalance(i: ImbalanceConfig) -> None:
    if i.ratio is not None:
        require(0 < i.ratio <= 1, "imbalance.ratio", i.ratio,
                "null (data as is) or a number in (0, 1]: the majority group's share of the training set")
    if i.size is not None:
        require(i.size >= 1, "imbalance.size", i.size, "null (largest achievable) or an integer >= 1")


def _normalise_amp(node: DictConfig) -> None:
    """YAML 1.1 reads a bare ``off`` as False: accept it as the string 'off' (and true/false as strings)."""
    amp = node.get("amp", "off") if node is not None else "off"
    if amp is False or amp is None:
        node.amp = "off"
    on_device = node.get("data_on_device", "auto") if node is not None else "auto"
    if isinstance(on_device, bool):  # YAML true/false for a three-way auto|true|false key
        node.data_on_device = str(on_device).lower()


def _select_schema(group: str, node: Any, registry: dict) -> type:
    name = node.get("name") if isinstance(node, (dict, DictConfig)) else None
    if name not in registry:
        raise ConfigError(
            f"Unknown {group} '{name}'. Available {group}s: {', '.join(sorted(registry))} "
            f"(choose one with '{group}=<name>')."
        )
    return registry[name]


def validate_run_config(cfg: DictConfig) -> RunConfig:
    """Check a composed Hydra config and return the typed :class:`RunConfig`.

    Checks key names and types per section, value ranges, and cross-key rules (e.g. protected
    attribute different from target). Raises :class:`ConfigError` with one clear paragraph.
    """
    from fairrun.data.registry import DATASET_SCHEMAS, validate_dataset_config
    from fairrun.methods import METHOD_SCHEMAS
    from fairrun.models import MODEL_SCHEMAS

    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    OmegaConf.set_struct(cfg, False)
    allowed_top = {"dataset", "model", "method", "trainer", "gpu", "imbalance", "seed", "resume", "eval_datasets",
                   "eval", "postprocess"}
    unknown = sorted(set(cfg.keys()) - allowed_top)
    if unknown:
        raise ConfigError(
            f"Unknown top-level key(s) {', '.join(unknown)}. Accepted: {', '.join(sorted(allowed_top))}."
        )
    if cfg.get("gpu") is not None:
        _normalise_amp(cfg.gpu)
    dataset = typed_section("dataset", _select_schema("dataset", cfg.get("dataset"), DATASET_SCHEMAS),
                            cfg.get("dataset"))
    model = typed_section("model", _select_schema("model", cfg.get("model"), MODEL_SCHEMAS), cfg.get("model"))
    method = typed_section("method", _select_schema("method", cfg.get("method"), METHOD_SCHEMAS),
                           cfg.get("method"))
    trainer = typed_section("trainer", TrainerConfig, cfg.get("trainer"))
    gpu = typed_section("gpu", GpuConfig, cfg.get("gpu"))
    imbalance = typed_section("imbalance", ImbalanceConfig, cfg.get("imbalance"))
    seed = cfg.get("seed", 0)
    require(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", seed,
            "an integer >= 0")
    resume = cfg.get("resume", True)
    require(isinstance(resume, bool), "resume", resume, "true or false")
    _validate_trainer(trainer)
    _validate_gpu(gpu)
    _validate_imbalance(imbalance)
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
                    eval=evaluation, postprocess=postprocess)
    if hasattr(method, "validate_run"):  # cross-section rules of a method (e.g. DP-SGD and gpu.amp)
        method.validate_run(run)
    return run


def _validate_eval_datasets(entries: Any, dataset: Any) -> list:
    """``eval_datasets``: a list of dataset names or {name: ..., key: value} mappings, each checked."""
    from fairrun.transfer import entry_dict, eval_dataset_config

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
    try:
        return validate_run_config(OmegaConf.create(data))
    except (ConfigError, OmegaConfBaseException, ValueError, TypeError, KeyError, AttributeError) as err:
        raise ConfigError(f"{path} is not a run config that this fairrun can use ({err}). {cure}") from None


def validate_dataset_section(node: Any) -> Any:
    """Validate a ``dataset`` section alone (for commands that only read data)."""
    from fairrun.data.registry import DATASET_SCHEMAS, validate_dataset_config

    if isinstance(node, DictConfig):
        node = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
    dataset = typed_section("dataset", _select_schema("dataset", node, DATASET_SCHEMAS), node)
    validate_dataset_config(dataset)
    return dataset


@dataclass
class DataReportConfig:
    """`fairrun data`: the dataset, the imbalance setting applied to train, and the report's keys."""

    dataset: Any
    imbalance: ImbalanceConfig
    gpu: GpuConfig
    seed: int = 0
    compare: list = field(default_factory=list)
    samples: int = 32


def validate_data_report_config(cfg: DictConfig) -> DataReportConfig:
    """Check `fairrun data`'s composed config; raises ConfigError naming a bad key."""
    from fairrun.transfer import entry_dict

    dataset = validate_dataset_section(cfg.dataset)
    if cfg.get("gpu") is not None:
        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
        _normalise_amp(cfg.gpu)
    imbalance = typed_section("imbalance", ImbalanceConfig, cfg.get("imbalance"))
    _validate_imbalance(imbalance)
    gpu = typed_section("gpu", GpuConfig, cfg.get("gpu"))
    _validate_gpu(gpu)
    seed, samples = cfg.get("seed", 0), cfg.get("samples", 32)
    require(isinstance(seed, int) and seed >= 0, "seed", seed, "an integer >= 0")
    require(isinstance(samples, int) and 1 <= samples <= 256, "samples", samples, "an integer from 1 to 256")
    compare = cfg.get("compare") or []
    if isinstance(compare, (str, dict, DictConfig)):
        compare = [compare]
    return DataReportConfig(dataset=dataset, imbalance=imbalance, gpu=gpu, seed=seed,
                            compare=[entry_dict(e) for e in compare], samples=samples)
