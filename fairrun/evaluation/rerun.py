"""`fairrun eval`: reload a run's best checkpoint and evaluate it again."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf

from fairrun import rundir
from fairrun.core.environment import environment, results_columns
from fairrun.config import load_run_config
from fairrun.core.sections import GpuConfig
from fairrun.core.validation import typed_section
from fairrun.data.imbalance import apply_imbalance_to_splits
from fairrun.data.registry import load_dataset
from fairrun.core.errors import FairrunError
from fairrun.rundir.lock import hold
from fairrun.evaluation.predictions import fit_decision_rule, measure, raw_predictions
from fairrun.evaluation.trained import read_best, rebuild
from fairrun.report.console import print_results
from fairrun.evaluation.transfer import append_rows, eval_dataset_config, evaluate_on_dataset
from fairrun.core.devices import resolve_device
from fairrun.training.results import PRIVACY_COLUMNS, recorded_overrides, run_metadata

log = logging.getLogger("fairrun")

EVAL_RESULTS = "eval_results.pkl"


def privacy_of(run_dir: Path) -> dict:
    """The privacy columns of a run (ε and friends, as written at training time; NaN if not private).

    Read from the run's checksummed results.json (never by unpickling results.pkl); when the results
    are missing or damaged the evaluation goes on, with a warning, and these columns stay NaN.
    """
    columns = dict(PRIVACY_COLUMNS)
    trained = run_dir / rundir.RESULTS
    if not (trained.exists() or (run_dir / rundir.RESULTS_SAFE).exists()):
        return columns
    try:
        results = rundir.read_results(trained)
    except FairrunError as err:
        log.warning("the privacy columns (%s) of this evaluation are left NaN: %s",
                    ", ".join(PRIVACY_COLUMNS), err)
        return columns
    if len(results):
        first = results.iloc[0]
        columns.update({k: first[k] for k in first.index if k in PRIVACY_COLUMNS or k.startswith("dp_")})
    return columns


def run_eval(run_dir: Path, eval_cfg, explicit_keys: set = frozenset()) -> pd.DataFrame:
    """Evaluate ``run_dir``'s best checkpoint on its own val and test splits.

    Returns and writes ``eval_results.pkl`` (same columns as results.pkl); on the run's own splits
    and device the metrics equal those written at training time. With ``dataset=<name>`` in
    ``eval_cfg``, evaluates on that dataset's test split instead (cross-dataset evaluation) and
    appends ``split=<name>:test`` rows to results.pkl.

    Writing into ``run_dir`` holds its lock (:mod:`fairrun.rundir.lock`), so an evaluation never writes
    beside a training run that is still going on. With ``out_dir`` set in ``eval_cfg`` nothing is written
    into ``run_dir`` (which may then be read-only): eval_results.pkl (the cross-dataset rows too) and the
    cross-dataset predictions go to ``out_dir``.
    """
    config_path, best_path = run_dir / rundir.RUN_CONFIG, run_dir / rundir.BEST
    for path in (config_path, best_path):
        if not path.is_file():
            raise FairrunError(f"{run_dir} is not a finished fairrun run directory: {path.name} is missing "
                               f"(expected {rundir.RUN_CONFIG} and {rundir.BEST} written by fairrun train).")
    out_dir = eval_cfg.get("out_dir")
    if out_dir is not None:
        return _run_eval(run_dir, eval_cfg, explicit_keys, Path(out_dir))
    cure = (f"wait until that command ends, or write this evaluation elsewhere with out_dir=DIR ({run_dir} "
            f"is then only read)")
    with hold(run_dir, "run", cure):
        return _run_eval(run_dir, eval_cfg, explicit_keys, None)


def _run_eval(run_dir: Path, eval_cfg, explicit_keys: set, out_dir: Path | None) -> pd.DataFrame:
    cfg = load_run_config(run_dir / rundir.RUN_CONFIG)
    gpu = typed_section("gpu", GpuConfig, eval_cfg.gpu)
    device = resolve_device(gpu)
    best = read_best(run_dir)
    other = eval_cfg.get("dataset")
    splits = None
    if "class_names" in best:
        model_classes, shape = best["class_names"], best["image_shape"]
        num_groups = len(best["group_names"])
    else:  # runs written before checkpoints recorded their classes: read the training data
        splits = load_dataset(cfg.dataset, workers=gpu.num_workers)
        train = splits["train"]
        model_classes, shape, num_groups = train.class_names, list(train.images.shape[1:]), train.num_groups
    model, method = rebuild(cfg, best, len(model_classes), num_groups, shape)
    model.to(device)
    batch_size = eval_cfg.batch_size or cfg.trainer.eval_batch_size
    amp = gpu.amp if device.type == "cuda" else "off"
    # the trained run's parameter columns (its own overrides, not this eval command's)
    base = {**run_metadata(cfg, run_dir, recorded_overrides(run_dir)),
            "best_epoch": best["epoch"], "evaluated_on": str(device),
            # how the checkpoint was chosen (trainer.select); best.pt records it since issue 18
            "selected_by": best.get("selected_by", "accuracy"),
            "selected_value": float(best.get("selected_value", float("nan"))), **privacy_of(run_dir),
            **results_columns(environment(device))}  # the environment these numbers were computed in
    if other is not None:
        return evaluate_other(run_dir, cfg, other, explicit_keys, model, method, model_classes, base,
                              batch_size, device, amp, gpu.num_workers, threshold=best.get("threshold"),
                              out_dir=out_dir)
    splits = splits or load_dataset(cfg.dataset, workers=gpu.num_workers)
    # the evaluation splits as the run saw them: skewed where imbalance.splits says so (the training split is
    # not evaluated here, and its skew does not change the others')
    splits = apply_imbalance_to_splits({**splits, "train": splits["train"]}, cfg.imbalance, cfg.seed) \
        if any(name != "train" for name in cfg.imbalance.splits) else splits
    wanted = [eval_cfg.splits] if isinstance(eval_cfg.splits, str) else list(eval_cfg.splits)
    unknown = [name for name in wanted if name not in splits]
    if unknown or not wanted:
        raise FairrunError(f"Invalid splits={wanted!r}: unknown {unknown!r}. Accepted: a list drawn from "
                           f"{', '.join(splits)}, e.g. splits=[val,test].")
    rows, raw_rows = [], []
    with torch.no_grad():
        val_raw = raw_predictions(model, method, splits["val"], "val", batch_size, device, amp)
        # the threshold saved at training time; post-processing is refitted on the same val scores
        rule = fit_decision_rule(val_raw, len(model_classes), cfg.eval, cfg.postprocess, cfg.seed,
                                 threshold=best.get("threshold"))
        for name in wanted:
            raw = val_raw if name == "val" else raw_predictions(model, method, splits[name], name, batch_size,
                                                                 device, amp)
            for split_name, metrics, _ in measure(raw, rule, name, splits[name].group_names, len(model_classes)):
                (rows if split_name == name else raw_rows).append({**base, "split": split_name, **metrics})
    results = pd.DataFrame(rows + raw_rows)
    rundir.write_pickle(results, (out_dir or run_dir) / EVAL_RESULTS)
    print_results(results)
    return results


def evaluate_other(run_dir: Path, cfg, other, explicit_keys: set, model, method, model_classes: list,
                   base: dict, batch_size: int, device, amp: str, workers: int,
                   threshold: float | None = None, out_dir: Path | None = None) -> pd.DataFrame:
    """Cross-dataset evaluation: test on another dataset and append ``<dataset>:test`` rows to results.pkl
    (with ``out_dir``: write them to ``out_dir``/eval_results.pkl, predictions beside them).

    Only the dataset keys given on the command line (``explicit_keys``) override that dataset's
    YAML; target and protected otherwise follow the training run (see fairrun.evaluation.transfer).
    """
    other = OmegaConf.to_container(other, resolve=True) if not isinstance(other, dict) else other
    entry = {"name": other["name"], **{k: other[k] for k in explicit_keys if k in other}}
    ds_cfg = eval_dataset_config(entry, cfg.dataset)
    with torch.no_grad():
        row, pred = evaluate_on_dataset(model, method, ds_cfg, model_classes, batch_size, device, amp, workers,
                                        threshold=threshold)
    if out_dir is None:
        results = append_rows(run_dir, base, [row], [pred])
    else:
        results = pd.DataFrame([{**base, **row}])
        rundir.write_pickle(results, out_dir / EVAL_RESULTS)
        rundir.write_pickle(pred, out_dir / f"predictions_{row['split'].split(':')[0]}.pkl")
    print_results(results[results["split"] == row["split"]])
    return results
