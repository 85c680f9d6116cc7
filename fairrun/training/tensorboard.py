"""What a run writes to TensorBoard besides the training curves: a readable run name, the HParams entry with
every swept setting, validation loss and per-group / per-cell rates at every evaluation (with a Custom Scalars
layout that draws each family as one chart), per-group PR curves and sample grids at the end.

The training loop (:mod:`fairrun.training.loop`) calls these functions; they reuse the predictions it has
already computed, so TensorBoard costs no extra pass over the data.
"""
from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fairrun.core.overrides import override_key as _key, short_key_names, swept_keys  # noqa: F401

log = logging.getLogger("fairrun")

TB = "tb"  # the run directory's TensorBoard folder; the events go to TB/<run name>/
EVENTS = "events.out.tfevents"
MAX_NAME = 120  # characters of a run name (a folder name) before it is shortened with a hash
SAMPLES_PER_GROUP = 8  # validation images per group in the sample grids
TILE = 64  # pixels of the longer side of one sample in a grid (images are enlarged, nearest neighbour)
MIN_WIDTH = 84  # pixels of a sample's column at least (room for its caption)
BORDER = 3  # pixels of the coloured frame of a sample: green correct, red wrong
CORRECT, WRONG = (40, 170, 60), (210, 40, 40)


# -- run names ----------------------------------------------------------------------------------------------

def job_overrides_to_name(run_dir: Path | None = None) -> list[str]:
    """The overrides that tell this Hydra job apart (``HydraConfig.get().overrides.task``): in a multirun only
    those of the swept keys (:func:`swept_keys` of ``hydra.sweep.dir``, else of the parent of ``run_dir``,
    a job's ``<sweep dir>/<job num>``; all of them when neither can be read), in a single run all of them;
    ``[]`` outside a Hydra app. Hydra's own keys (``hydra.*``) are left out."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return []
    hydra_cfg = HydraConfig.get()
    overrides = [str(o) for o in hydra_cfg.overrides.task if not _key(str(o)).startswith("hydra")]
    if hydra_cfg.mode == RunMode.MULTIRUN:
        swept = swept_keys(Path(str(hydra_cfg.sweep.dir)))
        if swept is None and run_dir is not None:
            swept = swept_keys(Path(run_dir).parent)
        if swept is not None:
            overrides = [o for o in overrides if _key(o) in swept]
    return overrides


def run_name(overrides: list[str]) -> str:
    """A readable run name from ``key=value`` overrides: ``method=groupdro,ratio=0.9,seed=1``. Keys are cut
    to their last part (``imbalance.ratio`` -> ``ratio``) unless two keys would then read the same; a ``/`` in
    a value becomes ``_`` (the name is one folder). Longer than :data:`MAX_NAME` characters: cut, with a short
    hash of the whole name appended. No override: ``run``."""
    pairs = [(_key(o), o.split("=", 1)[1] if "=" in o else "") for o in overrides]
    names = short_key_names([k for k, _ in pairs])
    parts = [f"{names[k]}={v}" for k, v in pairs]
    name = ",".join(parts).replace("/", "_").replace("\\", "_") or "run"
    if name in (".", ".."):
        name = "run"
    if len(name) > MAX_NAME:
        name = name[:MAX_NAME - 9] + "~" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def log_dir(run_dir: Path, resumed: bool = False, name: str | None = None) -> Path:
    """The folder the run's SummaryWriter writes to: ``<run dir>/tb/<run name>/``, so that
    ``tensorboard --logdir <sweep dir>`` lists runs as ``0/tb/method=groupdro,seed=1`` (the run directory
    layout is unchanged). ``name`` defaults to :func:`run_name` of :func:`job_overrides_to_name`. A
    ``resumed`` run keeps writing where it started: into the existing subfolder of ``tb/`` with events, else
    into ``tb/`` itself if it holds events (a run started before run names)."""
    tb = Path(run_dir) / TB
    if resumed:
        existing = sorted(p.parent for p in tb.glob(f"*/{EVENTS}*"))
        if existing:
            return existing[0]
        if any(tb.glob(EVENTS + "*")):
            return tb
    return tb / (name if name is not None else run_name(job_overrides_to_name(run_dir)))


# -- HParams ------------------------------------------------------------------------------------------------

HPARAM_COLUMNS = ("dataset", "target", "protected", "model", "method", "imbalance_ratio", "seed")


def hparam_value(value):
    """A value TensorBoard's HParams can hold (int, float, str, bool): None as ``"none"``, anything else
    (a list) as its text; None when it cannot be shown (NaN)."""
    if value is None:
        return "none"
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return hparam_value(value.item())
    return str(value)


def hparams(base: dict, parameters: dict, trainer_cfg, epochs: int) -> dict:
    """The HParams of a run: the identifying results columns :data:`HPARAM_COLUMNS` of ``base``
    (:func:`fairrun.training.results.run_metadata`), ``lr``, ``batch_size``, ``epochs``, and ``parameters``
    (:func:`fairrun.training.results.run_parameters`: the method's own keys such as ``method.lam`` and every
    overridden key such as ``imbalance.size``). NaN values are left out (the dashboard cannot show them)."""
    values = {k: base[k] for k in HPARAM_COLUMNS if k in base}
    values.update(lr=trainer_cfg.lr, batch_size=trainer_cfg.batch_size, epochs=epochs)
    values.update(parameters)
    converted = {k: hparam_value(v) for k, v in values.items()}
    return {k: v for k, v in converted.items() if v is not None}


def write_hparams(writer, values: dict, metrics: dict, step: int = 0) -> None:
    """The HParams entry of the run, in its own folder: the session's ``values`` (:func:`hparams`) and the
    finite ``metrics`` (``hparam/test_<name>``, as scalars). Unlike ``SummaryWriter.add_hparams`` no
    experiment summary is written: the dashboard then builds its columns from every session's values
    (TensorBoard's hparams plugin, ``_compute_experiment_from_runs``), so a sweep over methods shows every
    method's keys, not only those of the one run whose experiment summary it would read first."""
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    finite = {k: float(v) for k, v in metrics.items() if not math.isnan(float(v))}
    _, session_start, session_end = hparams_summaries(values, finite)
    writer.file_writer.add_summary(session_start, step)
    writer.file_writer.add_summary(session_end, step)
    for tag, value in finite.items():
        writer.add_scalar(tag, value, step)


# -- validation scalars -------------------------------------------------------------------------------------

def validation_loss(proba: torch.Tensor, y: torch.Tensor) -> float:
    """The mean cross-entropy -1/n sum_i log p_i(y_i) of the class probabilities ``proba`` (N, K) at the
    true labels ``y`` (probabilities clamped at 1e-12, so a confident mistake counts 27.6, not inf); NaN
    when empty. This is the plain loss of the predictions, not the method's training objective (e.g.
    GroupDRO's)."""
    if len(y) == 0:
        return float("nan")
    picked = proba.gather(1, y.view(-1, 1).to(torch.int64)).clamp_min(1e-12)
    return float(-picked.log().mean())


def group_rate_tags(metrics: dict, group_names: list[str]) -> dict:
    """``{tag: value}`` of the per-group TPR and FPR of a binary target (``tpr[<group>]``, ``fpr[<group>]`` of
    :func:`fairrun.metrics.group_metrics`) as ``val_group_tpr/<group>``, ``val_group_fpr/<group>``; NaN rates
    (a group without positives or negatives) are left out."""
    return {f"val_group_{rate}/{group}": float(metrics[f"{rate}[{group}]"])
            for rate in ("tpr", "fpr") for group in group_names
            if f"{rate}[{group}]" in metrics and not math.isnan(metrics[f"{rate}[{group}]"])}


def cell_accuracy_tags(metrics: dict, group_names: list[str], class_names: list[str]) -> dict:
    """``{tag: value}`` of the per-cell accuracies ``acc[<group>,<class>]`` = P(y_hat = c | y = c, g)
    (Sagawa et al., ICLR 2020) as ``val_cell_acc/<group>,<class>``; empty cells (NaN) left out."""
    return {f"val_cell_acc/{group},{cls}": float(metrics[f"acc[{group},{cls}]"])
            for group in group_names for cls in class_names
            if f"acc[{group},{cls}]" in metrics and not math.isnan(metrics[f"acc[{group},{cls}]"])}


def write_validation(writer, metrics: dict, proba: torch.Tensor, split, class_names: list[str],
                     step: int) -> None:
    """Scalars of one evaluation on ``split`` (x: ``step``): ``val/loss`` (:func:`validation_loss`), the
    per-group rates (:func:`group_rate_tags`) and per-cell accuracies (:func:`cell_accuracy_tags`) from the
    evaluation's ``metrics`` and class probabilities ``proba``; nothing is predicted again."""
    loss = validation_loss(proba, split.y)
    if not math.isnan(loss):
        writer.add_scalar("val/loss", loss, step)
    tags = {**group_rate_tags(metrics, split.group_names),
            **cell_accuracy_tags(metrics, split.group_names, class_names)}
    for tag, value in tags.items():
        writer.add_scalar(tag, value, step)


def write_layout(writer) -> None:
    """The Custom Scalars layout: one chart per family, every group (or cell) a line of it: validation
    accuracy, TPR, FPR by group and accuracy by group x label cell, and the training and validation loss."""
    def multiline(pattern):
        return ["Multiline", [pattern]]

    writer.add_custom_scalars({
        "validation by group": {"accuracy": multiline(r"val_group_acc/.*"),
                                "TPR": multiline(r"val_group_tpr/.*"),
                                "FPR": multiline(r"val_group_fpr/.*")},
        "validation by cell (group, label)": {"accuracy": multiline(r"val_cell_acc/.*")},
        "loss": {"train and validation": multiline(r"(train|val)/loss$")},
    })


# -- end of training ----------------------------------------------------------------------------------------

def write_pr_curves(writer, pred: pd.DataFrame, group_names: list[str], num_classes: int, step: int) -> int:
    """One precision-recall curve per group of a binary target: ``test_pr/<group>`` from the predictions
    table ``pred`` (``y_true``, ``y_score`` = P(class 1), ``group``), the positive class's scores. Skipped,
    with a log line, for a multi-class target. Returns the number of curves written."""
    if num_classes != 2:
        log.info("TensorBoard: no per-group PR curves for a %d-class target (binary targets only)",
                 num_classes)
        return 0
    written = 0
    for group in group_names:
        rows = pred[pred["group"] == group]
        if len(rows):
            writer.add_pr_curve(f"test_pr/{group}", rows["y_true"].to_numpy().astype(np.int64),
                                rows["y_score"].to_numpy().astype(np.float32).clip(0, 1), step)
            written += 1
    return written


def _tile(image: torch.Tensor, correct: bool, caption: list[str]):
    """One sample as a PIL image: enlarged to about :data:`TILE` pixels (shrunk to ``2 * TILE`` if larger),
    framed green (correct) or red (wrong), with ``caption`` lines below."""
    from PIL import Image, ImageDraw, ImageOps

    array = image.permute(1, 2, 0).numpy()
    picture = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array[:, :, :3]).convert("RGB")
    if max(picture.size) > 2 * TILE:  # a large image (CelebA at 128 px and more) is shrunk
        picture.thumbnail((2 * TILE, 2 * TILE), Image.BILINEAR)
    scale = max(1, TILE // max(picture.size))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    framed = ImageOps.expand(picture, border=BORDER, fill=CORRECT if correct else WRONG)
    tile = Image.new("RGB", (max(framed.width, MIN_WIDTH), framed.height + 12 * len(caption) + 2), "white")
    tile.paste(framed, ((tile.width - framed.width) // 2, 0))
    draw = ImageDraw.Draw(tile)
    for i, line in enumerate(caption):
        draw.text((2, framed.height + 1 + 12 * i), line[:14], fill=(0, 0, 0))
    return tile


def sample_grid(images: torch.Tensor, y_true, y_pred, class_names: list[str]) -> np.ndarray:
    """A row of samples (uint8 (N, C, H, W)) as one uint8 (3, H, W) image: each framed green when
    ``y_pred == y_true`` and red otherwise, captioned ``p:<predicted>`` and ``t:<true>`` (class names)."""
    tiles = [_tile(img, int(p) == int(t), [f"p:{class_names[int(p)]}", f"t:{class_names[int(t)]}"])
             for img, t, p in zip(images, y_true, y_pred)]
    from PIL import Image

    width = sum(t.width for t in tiles) + 2 * (len(tiles) - 1)
    grid = Image.new("RGB", (width, max(t.height for t in tiles)), "white")
    x = 0
    for t in tiles:
        grid.paste(t, (x, 0))
        x += t.width + 2
    return np.asarray(grid).transpose(2, 0, 1).copy()


def write_sample_grids(writer, split, pred: pd.DataFrame, class_names: list[str], step: int,
                       per_group: int = SAMPLES_PER_GROUP) -> int:
    """One image per group of ``split`` (``val_samples/<group>``): its first ``per_group`` rows with the final
    predictions of the table ``pred`` (``index``, ``y_pred``), see :func:`sample_grid`. Returns the images
    written."""
    y_pred = torch.from_numpy(pred.sort_values("index")["y_pred"].to_numpy(dtype=np.int64, copy=True))
    written = 0
    for g, group in enumerate(split.group_names):
        index = torch.nonzero(split.g.cpu() == g).flatten()[:per_group]
        if len(index):
            grid = sample_grid(split.images[index.to(split.images.device)].cpu(), split.y.cpu()[index],
                               y_pred[index], class_names)
            writer.add_image(f"val_samples/{group}", grid, step, dataformats="CHW")
            written += 1
    return written
