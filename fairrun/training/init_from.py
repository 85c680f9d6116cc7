"""``init_from=RUN_DIR``: start a fresh run from the weights of a finished run (fine-tuning on another
dataset, target or protected attribute).

Transfer by initialisation: every tensor of the source run's ``checkpoints/best.pt`` model whose name and
shape match one of the new model's is copied into it before the first step; the rest (the classification
head when the number of classes differs, layers a method adds or replaces) keep their fresh initialisation.
Yosinski et al., "How transferable are features in deep neural networks?", NeurIPS 2014, show that copied
lower layers followed by fine-tuning of the whole network transfer well; here every copied tensor is
fine-tuned (nothing is frozen), with the run's own optimizer and schedule.

Two steps, so that mistakes surface before any data is decoded: :func:`resolve_source` checks the
directory, its done marker, its config (same model) and reads best.pt verified
(:func:`fairrun.evaluation.trained.read_best`); :func:`initialise` copies the matching tensors into the model
built by the training loop. A resumed run continues from its own ``checkpoints/last.pt`` and is not
initialised again (:mod:`fairrun.training.run`).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from fairrun import rundir
from fairrun.config import RunConfig, load_run_config
from fairrun.core.errors import ConfigError
from fairrun.evaluation.trained import read_best

log = logging.getLogger("fairrun")

# The classifier head's tensors (fairrun.models.Classifier.head): re-initialised when their shape differs
HEAD = "head."
# Tensors of a checkpoint that are a method's state rather than learned weights, never copied: fair_mask's
# unit mask is chosen after training on the source's data and groups (the new run chooses its own).
NOT_WEIGHTS = ("bottleneck.mask",)
# Model keys that change no tensor's shape nor what the trained weights mean: they may differ from the
# source's (dropout is a training setting; ImageNet weights would be replaced by the source's anyway).
NOT_ARCHITECTURE = ("dropout", "pretrained")
CURE = ("Pass init_from=RUN_DIR with the run directory of a finished fairrun train run (it holds a done "
        "marker, run_config.yaml and checkpoints/best.pt), or init_from=null to start from random weights.")


@dataclass
class InitSource:
    """A finished run whose best.pt weights start a new run: checked by :func:`resolve_source`."""

    run_dir: Path  # resolved, absolute
    weights: dict  # best.pt's model state dict (CPU tensors)
    class_names: list = field(default_factory=list)  # the source's classes, in the order of its head's rows


@dataclass
class InitReport:
    """What :func:`initialise` did: the new model's tensors copied and left fresh, the source's unused."""

    copied: list
    fresh: list
    unused: list


def resolved_path(init_from: Optional[str]) -> Optional[str]:
    """``init_from`` as an absolute path (``~`` expanded, relative to the working directory), or None."""
    return None if init_from is None else str(Path(init_from).expanduser().resolve())


def _refuse(value: str, problem: str) -> ConfigError:
    return ConfigError(f"init_from={value}: {problem} {CURE}")


def _model_section(cfg: RunConfig) -> dict:
    """The run's model section less :data:`NOT_ARCHITECTURE` (with its ``_target_``: a user's model)."""
    section = {"_target_": cfg.targets.get("model"), **dataclasses.asdict(cfg.model)}
    return {k: v for k, v in section.items() if k not in NOT_ARCHITECTURE}


def resolve_source(cfg: RunConfig, run_dir: Path) -> Optional[InitSource]:
    """The run ``cfg.init_from`` names, checked, with its best.pt weights; None when ``init_from`` is null.

    Raises a one-paragraph :class:`ConfigError` (naming the value, what is accepted and the cure) when the
    directory is missing, is this run's own directory, holds no finished run (no ``done`` marker), or was
    trained with another model (name, width, ...: any key but :data:`NOT_ARCHITECTURE`); a damaged
    run_config.yaml or best.pt fails its checksum (:mod:`fairrun.rundir`). Reads no data set.
    """
    if cfg.init_from is None:
        return None
    path = Path(resolved_path(cfg.init_from))
    if not path.is_dir():
        what = "is a file, not a run directory" if path.exists() else "does not exist"
        raise _refuse(cfg.init_from, f"{path} {what}.")
    if path == Path(run_dir).expanduser().resolve():
        raise _refuse(cfg.init_from, f"{path} is this run's own directory; a run cannot start from "
                                     f"itself. Launch the fine-tuning run into another directory "
                                     f"(hydra.run.dir=DIR).")
    if not rundir.is_done(path):
        raise _refuse(cfg.init_from, f"{path} holds no finished run (no {rundir.DONE} marker and "
                                     f"{rundir.RESULTS}): it is still training, was interrupted or failed. "
                                     f"Finish it first (launch its fairrun train command again to resume "
                                     f"it).")
    source_cfg = load_run_config(path / rundir.RUN_CONFIG)
    ours, theirs = _model_section(cfg), _model_section(source_cfg)
    if ours != theirs:
        differ = ", ".join(f"model.{k}={theirs.get(k)!r} there, {ours.get(k)!r} here"
                           for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k))
        raise _refuse(cfg.init_from, f"{path} was trained with another model ({differ}); its weights fit "
                                     f"only the same architecture. Launch with the source's model settings "
                                     f"(model={theirs.get('name')} and its keys, see "
                                     f"{path / rundir.RUN_CONFIG}).")
    best = read_best(path)
    return InitSource(path, dict(best["model"]), list(best.get("class_names", [])))


def _module_of(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def matching(model_state: dict, weights: dict) -> InitReport:
    """Split the new model's tensors into those copied from ``weights`` and those left fresh: a tensor is
    copied when ``weights`` holds one of the same name and shape, and so does every other tensor of its module
    (a layer is copied whole or not at all: a head with another number of classes keeps no bias of the
    source's); a method's state (:data:`NOT_WEIGHTS`) is never copied. ``unused``: the source's tensors not
    copied."""
    def fits(name):
        return (name in weights and name not in NOT_WEIGHTS
                and tuple(weights[name].shape) == tuple(model_state[name].shape))

    misfit_modules = {_module_of(name) for name in model_state if not fits(name)}
    copied = [name for name in model_state if fits(name) and _module_of(name) not in misfit_modules]
    fresh = [name for name in model_state if name not in copied]
    unused = [name for name in weights if name not in copied]
    return InitReport(copied, fresh, unused)


def _shapes(names: list, state: dict) -> str:
    return ", ".join(f"{n} {tuple(state[n].shape)}" for n in names) or "none"


def initialise(model: nn.Module, source: InitSource, class_names: list) -> InitReport:
    """Copy into ``model`` (in place, on its device) every tensor of ``source.weights`` with the same name and
    shape; log the tensors copied, left fresh and unused, with counts. ``class_names``: this run's classes
    (the head is copied only when their number equals the source's, row i to class i).

    Raises :class:`ConfigError` when no tensor outside the head matches: nothing of the source's backbone
    would be used, which is no fine-tuning (e.g. a method that rebuilds the whole network).
    """
    state = model.state_dict()
    report = matching(state, source.weights)
    if not any(not name.startswith(HEAD) for name in report.copied):
        theirs, ours = _shapes(list(source.weights), source.weights), _shapes(list(state), state)
        raise ConfigError(f"init_from={source.run_dir}: no tensor of the backbone of "
                          f"{source.run_dir / rundir.BEST} fits this run's model (its tensors: {theirs}; "
                          f"this model's: {ours}), so nothing would be transferred. A method that changes "
                          f"the whole architecture cannot start from that run; start from a run of the same "
                          f"method, or train this one from scratch (init_from=null).")
    with torch.no_grad():
        for name in report.copied:
            state[name].copy_(source.weights[name])  # state_dict() tensors share the parameters' storage
    log.info("init_from=%s: copied %d of the model's %d tensors from best.pt: %s", source.run_dir,
             len(report.copied), len(state), ", ".join(report.copied))
    if report.fresh:
        log.info("init_from: %d tensors left freshly initialised (not in the source, or another shape): %s",
                 len(report.fresh), _shapes(report.fresh, state))
    if report.unused:
        log.info("init_from: %d tensors of the source not used: %s", len(report.unused),
                 _shapes(report.unused, source.weights))
    head_copied = any(name.startswith(HEAD) for name in report.copied)
    if head_copied and source.class_names and list(source.class_names) != list(class_names):
        log.warning("init_from: the head was copied (%d classes both), mapping the source's classes %s to "
                    "this run's %s in that order", len(class_names), source.class_names, list(class_names))
    elif not head_copied and len(source.class_names) != len(class_names):
        log.info("init_from: the head is re-initialised (%d classes here, %d in the source)",
                 len(class_names), len(source.class_names))
    return report
