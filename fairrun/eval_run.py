"""`fairrun eval`: reload a run's best checkpoint and evaluate it again."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import torch

from fairrun import rundir
from fairrun.config import GpuConfig, load_run_config, typed_section
from fairrun.data.registry import load_dataset
from fairrun.errors import FairrunError
from fairrun.evaluate import evaluate_split
from fairrun.methods import build_method
from fairrun.models import build_model
from fairrun.report_table import print_results
from fairrun.train import resolve_device, run_metadata

log = logging.getLogger("fairrun")

EVAL_RESULTS = "eval_results.pkl"


def run_eval(run_dir: Path, eval_cfg) -> pd.DataFrame:
    """Evaluate ``run_dir``'s best checkpoint on its own val and test splits.

    Returns and writes ``eval_results.pkl`` (same columns as results.pkl); on the run's own splits
    and device the metrics equal those written at training time.
    """
    config_path, best_path = run_dir / rundir.RUN_CONFIG, run_dir / rundir.BEST
    for path in (config_path, best_path):
        if not path.is_file():
            raise FairrunError(f"{run_dir} is not a finished fairrun run directory: {path.name} is missing "
                               f"(expected {rundir.RUN_CONFIG} and {rundir.BEST} written by fairrun train).")
    cfg = load_run_config(config_path)
    gpu = typed_section("gpu", GpuConfig, eval_cfg.gpu)
    device = resolve_device(gpu)
    splits = load_dataset(cfg.dataset)
    train = splits["train"]
    method = build_method(cfg.method, num_classes=train.num_classes, num_groups=train.num_groups)
    model = build_model(cfg.model, train.images.shape[1], train.images.shape[-1], train.num_classes)
    best = rundir.load_checkpoint(best_path)
    model.load_state_dict(best["model"])
    method.load_state_dict(best["method"])
    model.to(device)
    batch_size = eval_cfg.batch_size or cfg.trainer.eval_batch_size
    amp = gpu.amp if device.type == "cuda" else "off"
    base = {**run_metadata(cfg, run_dir), "best_epoch": best["epoch"], "evaluated_on": str(device)}
    wanted = [eval_cfg.splits] if isinstance(eval_cfg.splits, str) else list(eval_cfg.splits)
    unknown = [name for name in wanted if name not in splits]
    if unknown or not wanted:
        raise FairrunError(f"Invalid splits={wanted!r}: unknown {unknown!r}. Accepted: a list drawn from "
                           f"{', '.join(splits)}, e.g. splits=[val,test].")
    rows = []
    with torch.no_grad():
        for name in wanted:
            metrics, _ = evaluate_split(model, method, splits[name], name, batch_size, device, amp)
            rows.append({**base, "split": name, **metrics})
    results = pd.DataFrame(rows)
    rundir.write_pickle(results, run_dir / EVAL_RESULTS)
    print_results(results)
    return results
