"""Reloading a trained classifier from a run directory: the one place that does it (``fairrun eval``, and the
staged methods' sub-runs through :class:`fairrun.training.run.SubRuns`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from fairrun import rundir
from fairrun.config import RunConfig, load_run_config
from fairrun.methods import Method, build_method
from fairrun.models import Classifier, build_model


def read_best(run_dir: Path) -> dict:
    """``checkpoints/best.pt`` of a run, verified (:func:`fairrun.rundir.load_checkpoint`) and checked to be
    the checkpoint dict that fairrun train writes; otherwise an IntegrityError naming the file and the cure."""
    path = Path(run_dir) / rundir.BEST
    best = rundir.load_checkpoint(path)
    missing = [k for k in ("model", "method", "epoch") if k not in best] if isinstance(best, dict) else []
    if not isinstance(best, dict) or missing:
        raise rundir.IntegrityError(f"{path} is not a best.pt written by fairrun train (it lacks "
                                    f"{', '.join(missing) or 'the checkpoint dict'}). {rundir.cure_for(path)}")
    return best


def rebuild(cfg: RunConfig, best: dict, num_classes: int, num_groups: int, image_shape) -> tuple[Classifier, Method]:
    """The model and method of a checkpoint: built from the run config exactly as training built them (the
    method may change the architecture, e.g. DP-SGD's GroupNorm), then loaded with the saved weights."""
    method = build_method(cfg.method, num_classes=num_classes, num_groups=num_groups)
    model = method.adapt_model(build_model(cfg.model, image_shape[0], image_shape[-1], num_classes))
    model.load_state_dict(best["model"])
    method.load_state_dict(best["method"])
    return model, method


@dataclass
class TrainedRun:
    """A finished run's best classifier, ready to predict (on ``device``, in eval mode)."""

    run_dir: Path
    cfg: RunConfig
    model: Classifier
    method: Method
    best: dict

    @property
    def class_names(self) -> list:
        return list(self.best["class_names"])

    @property
    def threshold(self):
        """The decision threshold chosen on validation at training time (None: the arg-max)."""
        return self.best.get("threshold")


def load_trained(run_dir: Path, device: torch.device) -> TrainedRun:
    """Reload ``run_dir``'s config (``run_config.yaml``) and best checkpoint (which records its classes,
    groups and input shape) into a :class:`TrainedRun`."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir / rundir.RUN_CONFIG)
    best = read_best(run_dir)
    model, method = rebuild(cfg, best, len(best["class_names"]), len(best["group_names"]), best["image_shape"])
    return TrainedRun(run_dir, cfg, model.to(device).eval(), method, best)
