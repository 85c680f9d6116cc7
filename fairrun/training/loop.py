"""The one training loop: device, AMP, progress, TensorBoard, checkpoints, resume, results.

Every method runs through it; methods change behaviour only through their hooks (:mod:`fairrun.methods.base`).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from fairrun import rundir
from fairrun.config import RunConfig
from fairrun.data.batches import (Augmentation, epoch_order, fits_on_device, load_into_memory, move_to_device,
                                  train_batches)
from fairrun.data.celeba import require_identities, with_identity
from fairrun.data.groups import label_split
from fairrun.data.imbalance import apply_imbalance_to_splits
from fairrun.data.registry import SPLITS, read_splits
from fairrun.core.devices import resolve_device, seed_everything
from fairrun.core.errors import ConfigError, Interrupted, NonFiniteLoss
from fairrun.evaluation.predictions import (autocast, class_names_of, fit_decision_rule, measure,
                                            metrics_from_predictions, predict_proba, predictions_frame,
                                            raw_predictions)
from fairrun.methods import build_method
from fairrun.methods.base import StepResult, TrainingPlan
from fairrun.metrics import registry
from fairrun.models import build_model
from fairrun.training.checks import model_io, require_every_cell_trained, require_select_metric
from fairrun.training.init_from import initialise
from fairrun.training.optimizers import build_optimizer, build_scheduler
from fairrun.training.precise_bn import recompute_batchnorm_statistics
from fairrun.training import tensorboard
from fairrun.training.results import PRIVACY_COLUMNS, run_metadata, run_parameters, selection_columns
from fairrun.training.signals import StopFlag

log = logging.getLogger("fairrun")


# A cross-entropy this large means logits millions apart: training has diverged even if the number is finite
# (trainer.lr=1e9 reaches 1.7e19 without ever becoming inf), so it stops like a NaN loss does.
DIVERGED_LOSS = 1e6
# The default validation metric that picks best.pt, the checkpoint evaluated at the end of a run
# (trainer.select): better by its direction in the metric registry (fairrun.metrics.registry).
SELECT = "accuracy"
# Steps between read-backs of the training loss and the number correct: the step keeps them on the device (no
# CUDA synchronisation per step, so the GPU runs ahead) and the loop reads a window back in one transfer every
# SYNC_EVERY steps, at the end of an epoch and before a checkpoint. The non-finite-loss check and the progress
# bar see each window then; the sums are the same Python floats in the same order, so results are unchanged.
SYNC_EVERY = 50


@dataclass
class LoopState:
    """Everything besides model/optimizer weights needed to continue a run exactly."""

    epoch: int = 0  # current epoch (0-based)
    step: int = 0  # batches finished in the current epoch
    global_step: int = 0
    loss_sum: float = 0.0  # running sums of the current epoch
    correct: int = 0
    seen: int = 0
    best_val_acc: float = -1.0  # the highest validation accuracy seen (the "learned nothing" warning)
    best_epoch: int = -1
    best_value: float = float("nan")  # trainer.select's validation value at best_epoch
    evals_since_best: int = 0  # evaluations without improvement (trainer.patience)
    stopped_early: bool = False  # trainer.patience ran out: training is over
    train_seconds: float = 0.0
    history: list = field(default_factory=list)


class Trainer:
    """Holds one run's objects; :meth:`fit` trains, :meth:`finish` evaluates and writes results."""

    def __init__(self, cfg: RunConfig, run_dir: Path, runs=None, init=None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.environment_columns: dict = {}  # results columns env_* (fairrun.core.environment.results_columns)
        require_select_metric(cfg.trainer)
        self.device = resolve_device(cfg.gpu)
        seed_everything(cfg.seed)
        by_person = cfg.method.name == "dp_fedavg" and cfg.method.partition == "identity"  # client = person
        if by_person:
            require_identities(cfg.dataset)  # before any image is decoded
        raw = read_splits(cfg.dataset, workers=cfg.gpu.num_workers)
        splits = {name: label_split(name, raw[name], cfg.dataset.target, cfg.dataset.protected)
                  for name in SPLITS}
        if by_person:
            splits["train"] = with_identity(splits["train"], raw["train"])
        splits = apply_imbalance_to_splits(splits, cfg.imbalance, cfg.seed)  # the splits in imbalance.splits
        self.val, self.test, self.train_raw = splits["val"], splits["test"], splits["train"]
        require_every_cell_trained(self.train_raw, cfg)
        self.method = build_method(cfg.method, num_classes=self.train_raw.num_classes,
                                   num_groups=self.train_raw.num_groups)
        if runs is not None:  # fairrun.training.run.SubRuns: sub-runs on this run's device
            runs.device = self.device
        self.method.bind(cfg, self.run_dir, self.device, runs=runs)
        self.train = self.place_training_data(self.method.prepare(self.train_raw))
        self.augmentation = Augmentation.from_dataset(cfg.dataset)
        channels, size = self.train.images.shape[1], self.train.images.shape[-1]
        model = build_model(cfg.model, channels, size, self.train.num_classes)
        self.model = self.method.adapt_model(model).to(self.device)
        if init is not None:  # init_from: a finished run's best.pt weights (fairrun.training.init_from)
            initialise(self.model, init, self.train.class_names)
        self.channels_last = cfg.gpu.channels_last and self.device.type == "cuda"
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        extra = [m.to(self.device) for m in self.method.extra_modules()]
        params = list(self.model.parameters()) + [p for m in extra for p in m.parameters()]
        optimizer = build_optimizer(params, cfg.trainer)
        self.plan = TrainingPlan(train=self.train, batch_size=cfg.trainer.batch_size, epochs=cfg.trainer.epochs,
                                 lr=cfg.trainer.lr, seed=cfg.seed, device=self.device,
                                 augmentation=self.augmentation, channels_last=self.channels_last,
                                 model_name=cfg.model.name)
        self.model, self.optimizer = self.method.wrap(self.model, optimizer, self.plan)
        self.epochs, self.steps_per_epoch = self.method.schedule(self.plan)
        self.scheduler = build_scheduler(self.optimizer, cfg.trainer, self.epochs)
        self.amp = cfg.gpu.amp if self.device.type == "cuda" else "off"
        if cfg.gpu.amp != "off" and self.device.type != "cuda":
            log.info("gpu.amp=%s is ignored on the CPU", cfg.gpu.amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")
        self.forward_model = torch.compile(self.model) if cfg.gpu.compile else self.model
        self.state = LoopState()
        self.val_metrics: dict = {}  # the last validation row (:meth:`validate`)
        self.tb_layout_written = False  # the Custom Scalars layout (written at the first validation)

    def place_training_data(self, train):
        """Read the training rows into RAM (if they fit) and onto the GPU when ``gpu.data_on_device`` asks
        (auto: if they fit in half the free GPU memory)."""
        policy = self.cfg.gpu.data_on_device
        train = load_into_memory(train)
        if self.device.type != "cuda" or policy == "false":
            return train
        if policy == "auto" and not fits_on_device(train, self.device):
            log.info("gpu.data_on_device=auto: the training images do not fit in half the free GPU memory; "
                     "batches are copied from host memory")
            return train
        log.info("training set (%d images) kept on %s", len(train), self.device)
        return move_to_device(train, self.device)

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint(self) -> dict:
        state = self.state
        return {
            "fingerprint": self.cfg.fingerprint(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else {},
            "scaler": self.scaler.state_dict(),
            "method": self.method.state_dict(),
            "extra_modules": [m.state_dict() for m in self.method.extra_modules()],
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "threads": torch.get_num_threads(),
            "loop": {k: getattr(state, k) for k in LoopState.__dataclass_fields__},
        }

    def restore(self, ckpt: dict) -> None:
        if ckpt["fingerprint"] != self.cfg.fingerprint():
            raise ConfigError(
                f"{self.run_dir / rundir.LAST} was written by a run with a different configuration, so it "
                f"cannot be resumed with this one. Launch into a new run directory, or pass resume=false "
                f"to start this directory over."
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.method.load_state_dict(ckpt["method"])
        for module, sd in zip(self.method.extra_modules(), ckpt["extra_modules"]):
            module.load_state_dict(sd)
        threads = ckpt.get("threads")
        if threads and threads != torch.get_num_threads():
            # CPU kernels reduce in a thread-count-dependent order: the rest of the run uses the count it
            # started with, so a resumed run equals an uninterrupted one whatever launcher resumes it.
            log.info("resuming with %d CPU threads, as this run was started (this process had %d)", threads,
                     torch.get_num_threads())
            torch.set_num_threads(threads)
        torch.set_rng_state(ckpt["rng_cpu"])
        if ckpt["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng_cuda"])
        loop = dict(ckpt["loop"])
        if "best_value" not in loop and loop.get("best_epoch", -1) >= 0:  # written before trainer.select
            loop["best_value"] = loop["best_val_acc"]
        self.state = LoopState(**loop)

    # -- training ----------------------------------------------------------------------------
    def train_step(self, batch) -> StepResult:
        """One optimisation step on ``batch``. An empty batch (possible under Poisson sampling) still
        steps: DP-SGD then adds noise only, as its privacy analysis assumes."""
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp):
            outputs = self.method.forward(self.forward_model, batch.x)
            loss = self.method.loss(outputs, batch)
        value = loss.detach() if len(batch.y) else 0.0
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        correct = (outputs.logits.argmax(dim=1) == batch.y).sum()
        # loss and correct stay on the device (tensors) until the loop reads a window back (SYNC_EVERY)
        return StepResult(value, correct, len(batch.y))

    def check_loss(self, value: float, epoch_step: int | None = None, global_step: int | None = None) -> None:
        """Raise :class:`NonFiniteLoss` when a step's loss is NaN or infinite, or has exploded past
        :data:`DIVERGED_LOSS`, naming the step (1-based; default: the step after the current one). The
        loop checks each window of :data:`SYNC_EVERY` steps when it reads it back, before any checkpoint
        is saved."""
        if math.isfinite(value) and abs(value) <= DIVERGED_LOSS:
            return
        epoch_step = self.state.step + 1 if epoch_step is None else epoch_step
        global_step = self.state.global_step + 1 if global_step is None else global_step
        saved = (f" The checkpoint saved before, {self.run_dir / rundir.LAST}, is kept."
                 if (self.run_dir / rundir.LAST).is_file() else "")
        what = f"became {value}" if not math.isfinite(value) else f"exploded to {value:.3g} (diverged)"
        t = self.cfg.trainer
        raise NonFiniteLoss(f"The training loss {what} at epoch {self.state.epoch + 1}, step "
                            f"{epoch_step} (global step {global_step}) with "
                            f"trainer.lr={t.lr:g}, trainer.weight_decay={t.weight_decay:g}, "
                            f"trainer.optimizer={t.optimizer}. Lower trainer.lr (e.g. trainer.lr={t.lr / 10:g})"
                            f"{' or trainer.weight_decay' if t.weight_decay > 0 else ''}, or check the data and "
                            f"the method's settings.{saved}")

    def refresh_batchnorm(self) -> int:
        """PreciseBN (:mod:`fairrun.training.precise_bn`): recompute the model's BatchNorm statistics over
        up to ``trainer.precise_bn`` batches of the epoch just trained (its order, sampler and augmentation,
        drawn again from their seeded generators), with the current weights. Returns the batches used (0:
        no BatchNorm, or ``trainer.precise_bn=0``)."""
        n = self.cfg.trainer.precise_bn
        if n < 1:
            return 0
        plan, epoch = self.plan, self.state.epoch
        batches = train_batches(plan.train, epoch_order(plan.train, plan.seed, epoch), plan.batch_size, plan.device,
                                0, plan.channels_last, plan.augmentation, plan.seed, epoch)
        with autocast(self.device, self.amp):
            return recompute_batchnorm_statistics(self.model, lambda x: self.method.forward(self.model, x),
                                                  batches, n)

    def validate(self, writer: SummaryWriter) -> tuple[float, float]:
        """Evaluate on the validation split: ``(trainer.select's value, worst-group accuracy)``, the whole row
        in :attr:`val_metrics`, after :meth:`refresh_batchnorm`. Writes the registry's ``tensorboard`` view
        (x: global step): ``val/<metric>``, and ``val_group_<metric>/<group>`` for a per-group metric such as
        accuracy; also ``val/loss``, ``val_group_tpr|fpr/<group>`` and ``val_cell_acc/<group>,<class>``
        (:func:`fairrun.training.tensorboard.write_validation`) from the same predictions."""
        self.refresh_batchnorm()
        proba = predict_proba(self.model, self.method, self.val, self.cfg.trainer.eval_batch_size,
                              self.device, self.amp, self.channels_last)
        pred = predictions_frame(self.val, proba, "val")
        metrics = metrics_from_predictions(pred, self.val.group_names, self.val.num_classes)
        step = self.state.global_step
        if not self.tb_layout_written:
            tensorboard.write_layout(writer)
            self.tb_layout_written = True
        tensorboard.write_validation(writer, metrics, proba, self.val,
                                     class_names_of(pred, self.val.num_classes), step)
        for m in registry.view("tensorboard"):
            tags = ([(f"val_group_{m.name}/{group}", f"{m.name}[{group}]") for group in self.val.group_names]
                    if m.per_group else [(f"val/{m.name}", m.name)])
            for tag, column in tags:
                if not math.isnan(metrics[column]):
                    writer.add_scalar(tag, metrics[column], step)
        self.val_metrics = metrics
        return metrics[self.cfg.trainer.select], metrics["worst_group_acc"]

    def read_back(self, window: list, writer: SummaryWriter) -> None:
        """Read a window of steps (``StepResult`` with device tensors or numbers) back to the host in one
        transfer, check each loss in order (:meth:`check_loss` names the step) and add it to the epoch sums
        exactly as a per-step read would (the same Python floats, in the same order)."""
        if not window:
            return
        s = self.state
        tensors = [x for r in window for x in (r.loss, r.correct) if isinstance(x, torch.Tensor)]
        if tensors:
            host = iter(torch.stack([t.to(torch.float64) for t in tensors]).tolist())
        first_step, first_global = s.step - len(window), s.global_step - len(window)
        for i, r in enumerate(window):
            loss = next(host) if isinstance(r.loss, torch.Tensor) else float(r.loss)
            correct = int(next(host)) if isinstance(r.correct, torch.Tensor) else int(r.correct)
            self.check_loss(loss, first_step + i + 1, first_global + i + 1)
            s.loss_sum += loss * r.seen
            s.correct += correct
            s.seen += r.seen
            if (first_global + i + 1) % 10 == 0:
                writer.add_scalar("train/loss_step", loss, first_global + i + 1)
        window.clear()

    def select(self, value: float, accuracy: float, epoch: int) -> bool:
        """Whether this evaluation's ``trainer.select`` value is the best so far (then best.pt is replaced):
        by the metric's direction; a NaN value is never best (the first evaluation is kept until a number
        comes). ``accuracy`` (validation) feeds the "learned nothing" warning."""
        s, name = self.state, self.cfg.trainer.select
        value = float(value)
        s.best_val_acc = max(s.best_val_acc, float(accuracy))
        improved = s.best_epoch < 0 or (not math.isnan(value) and (
            math.isnan(s.best_value) or registry.better(name, value, s.best_value)))
        if improved:
            s.best_value, s.best_epoch, s.evals_since_best = value, epoch, 0
        else:
            s.evals_since_best += 1
        return improved

    def fit(self, writer: SummaryWriter, stop: StopFlag) -> None:
        """Train from the loop state to the last epoch (or until ``trainer.patience`` runs out), validating
        every ``trainer.eval_every`` epochs, keeping best.pt and saving last.pt after every epoch."""
        cfg, s = self.cfg.trainer, self.state
        epochs, n_batches = self.epochs, self.steps_per_epoch
        total_steps = n_batches * epochs
        self.model.train()
        window: list[StepResult] = []
        while s.epoch < epochs and not s.stopped_early:
            started = time.perf_counter()
            steps = self.method.epoch_batches(self.plan, s.epoch, s.step)
            bar = tqdm(steps,
                       total=n_batches, initial=s.step, desc=f"epoch {s.epoch + 1}/{epochs}",
                       leave=False, dynamic_ncols=True, disable=None)
            for item in bar:
                self.method.on_step(s.global_step, total_steps)
                # a StepResult is a step the method took itself (e.g. a federated round)
                window.append(item if isinstance(item, StepResult) else self.train_step(item))
                s.step += 1
                s.global_step += 1
                if len(window) >= SYNC_EVERY:
                    self.read_back(window, writer)
                    bar.set_postfix(loss=f"{s.loss_sum / max(s.seen, 1):.4f}",
                                    acc=f"{s.correct / max(s.seen, 1):.3f}")
                if stop.requested and self.method.at_boundary():
                    self.read_back(window, writer)
                    s.train_seconds += time.perf_counter() - started
                    rundir.save_checkpoint(self.checkpoint(), self.run_dir / rundir.LAST)
                    raise Interrupted(f"saved {self.run_dir / rundir.LAST} at epoch {s.epoch + 1}, "
                                      f"step {s.step}/{n_batches}", stop.exit_code)
            self.read_back(window, writer)
            bar.close()
            epoch = s.epoch + 1
            train_loss, train_acc = s.loss_sum / max(s.seen, 1), s.correct / max(s.seen, 1)
            writer.add_scalar("train/loss", train_loss, s.global_step)
            writer.add_scalar("train/accuracy", train_acc, s.global_step)
            writer.add_scalar("train/epoch", epoch, s.global_step)
            writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], s.global_step)
            for key, value in self.method.epoch_scalars().items():
                writer.add_scalar(key, value, s.global_step)
            line = f"epoch {epoch}/{epochs}  train loss {train_loss:.4f} acc {train_acc:.4f}"
            if epoch % cfg.eval_every == 0 or epoch == epochs:
                value, val_worst = self.validate(writer)
                val_acc = self.val_metrics["accuracy"]
                line += f"  | val acc {val_acc:.4f} worst-group {val_worst:.4f}"
                if cfg.select not in ("accuracy", "worst_group_acc"):
                    line += f" {cfg.select} {value:.4f}"
                s.history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                                  "val_acc": val_acc, "val_worst_group_acc": val_worst,
                                  f"val_{cfg.select}": value})
                if self.select(value, val_acc, epoch):
                    rundir.save_checkpoint({"model": self.model.state_dict(), "epoch": epoch,
                                            "fingerprint": self.cfg.fingerprint(),
                                            "method": self.method.state_dict(),
                                            "selected_by": cfg.select, "selected_value": s.best_value},
                                           self.run_dir / rundir.BEST)
                    line += "  (best)"
                elif cfg.patience is not None and s.evals_since_best >= cfg.patience and epoch < epochs:
                    s.stopped_early = True
                    line += (f"\nearly stop: {s.evals_since_best} evaluations without a better validation "
                             f"{cfg.select} than {s.best_value:.4f} at epoch {s.best_epoch} "
                             f"(trainer.patience={cfg.patience}); evaluating best.pt")
            if self.scheduler:
                self.scheduler.step()
            s.train_seconds += time.perf_counter() - started
            s.epoch, s.step, s.loss_sum, s.correct, s.seen = epoch, 0, 0.0, 0, 0
            rundir.save_checkpoint(self.checkpoint(), self.run_dir / rundir.LAST)
            log.info(line)
            if stop.requested:
                raise Interrupted(f"saved {self.run_dir / rundir.LAST} after epoch {epoch}", stop.exit_code)

    def evaluate_other_datasets(self, base: dict) -> pd.DataFrame:
        """Test on every ``eval_datasets`` entry; rows ``split=<dataset>:test`` join results.pkl."""
        from fairrun.evaluation.transfer import append_rows, eval_dataset_config, evaluate_on_dataset

        rows, preds = [], []
        for entry in self.cfg.eval_datasets:
            ds_cfg = eval_dataset_config(entry, self.cfg.dataset)
            row, pred = evaluate_on_dataset(self.model, self.method, ds_cfg, self.train.class_names,
                                            self.cfg.trainer.eval_batch_size, self.device, self.amp,
                                            self.cfg.gpu.num_workers, threshold=self.rule.threshold)
            rows.append(row)
            preds.append(pred)
        return append_rows(self.run_dir, base, rows, preds)

    # -- results -----------------------------------------------------------------------------
    def warn_if_nothing_learned(self) -> None:
        """Log a warning when the best validation accuracy never beat predicting the majority class p by more
        than two binomial standard deviations, 2 sqrt(p (1 - p) / n_val): such a model closes fairness gaps
        trivially, so its gaps are no evidence."""
        n = max(len(self.val), 1)
        majority = float(torch.bincount(self.val.y.cpu()).max()) / n
        if self.state.best_val_acc <= majority + 2 * math.sqrt(majority * (1 - majority) / n):
            log.warning("validation accuracy never left chance: best %.4f against %.4f for always predicting the "
                        "most frequent class. This model has learned nothing, and its fairness gaps are those "
                        "of a constant predictor, not evidence. Train longer, or change trainer.lr / "
                        "trainer.optimizer / trainer.batch_size (private methods: see docs/privacy.md, 'Defaults that learn').",
                        self.state.best_val_acc, majority)

    def write_tensorboard_summary(self, writer: SummaryWriter, base: dict, test: dict, test_raw: pd.DataFrame,
                                  val_pred: pd.DataFrame) -> None:
        """The end of a run in TensorBoard (:mod:`fairrun.training.tensorboard`): per-group PR curves of the
        test scores ``test_raw``, a grid of validation samples per group with their predictions ``val_pred``,
        and the HParams entry (the run's settings, :func:`run_parameters` included, and the ``test``
        metrics)."""
        step = self.state.global_step
        tensorboard.write_pr_curves(writer, test_raw, self.test.group_names, self.test.num_classes, step)
        class_names = class_names_of(val_pred, self.val.num_classes)
        tensorboard.write_sample_grids(writer, self.val, val_pred, class_names, step)
        values = tensorboard.hparams(base, run_parameters(self.cfg), self.cfg.trainer, self.epochs)
        tensorboard.write_hparams(writer, values, {f"hparam/test_{m.name}": test[m.name]
                                                   for m in registry.view("hparams")}, step)

    def finish(self, writer: SummaryWriter) -> pd.DataFrame:
        self.warn_if_nothing_learned()
        best = rundir.load_checkpoint(self.run_dir / rundir.BEST)
        self.model.load_state_dict(best["model"])
        self.method.load_state_dict(self.method.state_for_release(best["method"]))
        self.method.after_fit(self.model, self.val, self.train_raw)
        self.method.write_files(self.run_dir)
        # best.pt holds the final model (after after_fit) so `fairrun eval` reproduces these results.
        rundir.save_checkpoint({**best, "model": self.model.state_dict(), "method": self.method.state_dict(),
                                **model_io(self.train)}, self.run_dir / rundir.BEST)
        base = run_metadata(self.cfg, self.run_dir)
        base.update(train_seconds=self.state.train_seconds, best_epoch=self.state.best_epoch,
                    epochs=self.epochs, torch_threads=torch.get_num_threads())
        base.update(selection_columns(self.cfg.trainer.select, self.state.best_value))
        base.update(self.environment_columns)  # env_torch, env_numpy, ...: set by training.run from environment.json
        base.update(PRIVACY_COLUMNS)
        base.update({f"n_train[{k}]": int(v) for k, v in
                     zip(self.train_raw.group_names, torch.bincount(self.train_raw.g,
                                                                    minlength=self.train_raw.num_groups))})
        base.update(self.method.extra_results())
        rows, preds, raw_rows = [], [], []
        eval_args = (self.cfg.trainer.eval_batch_size, self.device, self.amp, self.channels_last)
        splits = {"val": self.val, "test": self.test}
        raw = {name: raw_predictions(self.model, self.method, split, name, *eval_args)
               for name, split in splits.items()}
        self.rule = fit_decision_rule(raw["val"], self.val.num_classes, self.cfg.eval, self.cfg.postprocess,
                                      self.cfg.seed)
        final = {}  # split -> its predictions in results.pkl (after the decision rule)
        for name, split in splits.items():
            for split_name, metrics, pred in measure(raw[name], self.rule, name, split.group_names,
                                                     split.num_classes):
                (rows if split_name == name else raw_rows).append({**base, "split": split_name, **metrics})
                preds.append(pred)
                final.setdefault(split_name, pred)
        for suffix, context in self.method.evaluation_variants().items():
            with context():
                for name, split in splits.items():
                    variant = raw_predictions(self.model, self.method, split, f"{name}_{suffix}", *eval_args)
                    for split_name, metrics, pred in measure(variant, self.rule, f"{name}_{suffix}",
                                                             split.group_names, split.num_classes):
                        (rows if not split_name.endswith("_raw") else raw_rows).append(
                            {**base, "split": split_name, **metrics})
                        preds.append(pred)
        rows += raw_rows
        if self.rule.threshold is not None:
            best = rundir.load_checkpoint(self.run_dir / rundir.BEST)
            rundir.save_checkpoint({**best, "threshold": self.rule.threshold}, self.run_dir / rundir.BEST)
        results = pd.DataFrame(rows)
        rundir.write_pickle(pd.concat(preds, ignore_index=True), self.run_dir / rundir.PREDICTIONS)
        rundir.write_pickle(results, self.run_dir / rundir.RESULTS)
        if self.cfg.eval_datasets:
            results = self.evaluate_other_datasets(base)
        self.write_tensorboard_summary(writer, base, rows[1], raw["test"], final["val"])
        rundir.write_text("", self.run_dir / rundir.DONE)
        return results
