"""The method interface: one small class per debiasing method, called by the one training loop.

The loop (:class:`fairrun.training.loop.Trainer`) calls, in order:

* ``bind(run, run_dir, device, runs)`` - first, with the whole run config and sub-runs (staged methods: gan_debias);
* ``prepare(train)`` - before training: may return the training split with per-sample ``weights`` or
  ``sample_probs`` (a sampler, not copied data) set;
* ``adapt_model(model)`` - may change the architecture (a bottleneck, one head per group) before the
  optimizer is built; ``fairrun eval`` calls it too, so the checkpoint loads into the same shape;
* ``wrap(model, optimizer, plan)`` - may wrap the optimizer (DP-SGD's Opacus optimizer) or replace it
  (federated averaging's server optimizer); ``plan`` says what will be trained how (:class:`TrainingPlan`);
* ``schedule(plan)`` - how many epochs of how many steps (default: ``trainer.epochs`` of
  ``ceil(N / batch_size)`` batches);
* ``epoch_batches(plan, epoch, start_step)`` - the steps of one epoch: :class:`Batch` objects, which the
  loop trains on, or :class:`StepResult` objects for work the method did itself (a federated round).
  The default draws a seeded permutation (or ``sample_probs`` draws) and cuts it into batches;
* ``on_step(step, total_steps)`` then ``forward(model, x)`` and ``loss(outputs, batch)`` - every
  step (``step`` counts from 0 over the whole run); group labels are in the batch;
* ``at_boundary()`` - whether a checkpoint may be written after the current step (DP-SGD: only at the
  end of a logical batch); ``epoch_scalars()`` - values logged to TensorBoard after every epoch (ε);
* ``after_fit(model, val, train)`` - after training, with the best checkpoint loaded;
* ``write_files(run_dir)`` - the method's artefacts (e.g. fair_mask.json) into the run directory;
* ``evaluation_variants()`` - extra evaluations (e.g. before masking) written as extra result rows;
* ``extra_results()`` - extra columns for results.pkl (e.g. ``epsilon``).

Methods with state that must survive a resume implement ``state_dict``/``load_state_dict``; extra
trainable modules (adversaries, extra heads) are returned by ``extra_modules`` and join the optimizer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator, Union

import torch
import torch.nn.functional as F
from torch import nn

from fairrun.data.base import Batch, LabeledSplit  # noqa: F401  (re-exported: methods see batches)
from fairrun.data.batches import Augmentation, epoch_order, num_batches, train_batches


@dataclass
class TrainingPlan:
    """What the training loop will train on and how, as the methods' ``wrap``/``schedule`` hooks see it."""

    train: LabeledSplit  # the training split actually used (after ``prepare``)
    batch_size: int  # trainer.batch_size
    epochs: int  # trainer.epochs
    lr: float  # trainer.lr
    seed: int
    device: torch.device
    augmentation: Augmentation
    channels_last: bool = False
    model_name: str = ""  # model.name (e.g. to choose how per-example gradients are computed)


@dataclass
class StepResult:
    """A training step a method carried out itself: mean loss, number correct, examples seen."""

    loss: float
    correct: int
    seen: int


@dataclass
class Outputs:
    """What the model produced for a batch."""

    latent: torch.Tensor  # head input (N, latent_dim)
    logits: torch.Tensor  # (N, num_classes)


class Method:
    """Base class: empirical risk minimisation behaviour for every hook.

    Subclasses set ``name`` and ``Config`` (a dataclass of their ``method.*`` keys; it may define
    ``validate()`` for range checks) and override only the hooks they need.
    """

    name: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, cfg, *, num_classes: int, num_groups: int):
        self.cfg = cfg
        self.num_classes = num_classes
        self.num_groups = num_groups

    def bind(self, run, run_dir, device: torch.device, runs=None) -> None:
        """Called first by the training loop with the whole validated run config, the run directory, the
        device and ``runs`` (:class:`fairrun.training.run.SubRuns`: train a sub-run, reload a finished run's
        classifier), for methods whose stages need them (sub-runs, cached artefacts in the run directory)."""

    def prepare(self, train):
        """Return the training split to use (weights / sampling probabilities set here)."""
        return train

    def adapt_model(self, model: nn.Module) -> nn.Module:
        """Return the model to train (default: unchanged); called before the optimizer is built."""
        return model

    def on_step(self, step: int, total_steps: int) -> None:
        """Called before every training step with the run-wide step index (for schedules such as λ(t))."""

    def extra_modules(self) -> list[nn.Module]:
        """Trainable modules the method owns; they are moved to the device and join the optimizer."""
        return []

    def wrap(self, model: nn.Module, optimizer: torch.optim.Optimizer, plan: TrainingPlan):
        """Return (model, optimizer), possibly wrapped; the model returned is the one saved and evaluated."""
        return model, optimizer

    def schedule(self, plan: TrainingPlan) -> tuple[int, int]:
        """(number of epochs, steps per epoch) of the training loop."""
        return plan.epochs, num_batches(len(plan.train), plan.batch_size)

    def epoch_batches(self, plan: TrainingPlan, epoch: int, start_step: int) -> Iterator[Union[Batch, StepResult]]:
        """The steps of epoch ``epoch`` from step ``start_step`` on (a function of seed and epoch only)."""
        order = epoch_order(plan.train, plan.seed, epoch)
        return train_batches(plan.train, order, plan.batch_size, plan.device, start_step, plan.channels_last,
                             plan.augmentation, plan.seed, epoch)

    def at_boundary(self) -> bool:
        """Whether the loop may checkpoint (and stop) after the step just taken."""
        return True

    def epoch_scalars(self) -> dict:
        """Scalars logged to TensorBoard after every epoch (e.g. ``privacy/epsilon``)."""
        return {}

    def forward(self, model: nn.Module, x: torch.Tensor) -> Outputs:
        """Run the model: latent representation, then logits."""
        latent = model.features(x)
        return Outputs(latent=latent, logits=model.head(latent))

    def per_sample_loss(self, outputs: Outputs, batch: Batch) -> torch.Tensor:
        """Cross-entropy per sample (float32 even under autocast)."""
        return F.cross_entropy(outputs.logits.float(), batch.y, reduction="none")

    def loss(self, outputs: Outputs, batch: Batch) -> torch.Tensor:
        """The training objective for one batch: the (weighted) mean cross-entropy."""
        losses = self.per_sample_loss(outputs, batch)
        if batch.weight is None:
            return losses.mean()
        return (losses * batch.weight).sum() / batch.weight.sum()

    def after_fit(self, model: nn.Module, val, train=None) -> None:
        """Called once after training with the best checkpoint loaded (masking, thresholds).

        ``val`` and ``train`` are the validation split and the training split actually used.
        """

    def write_files(self, run_dir) -> None:
        """Write the method's own artefacts into the run directory (after ``after_fit``)."""

    def evaluation_variants(self) -> dict:
        """Extra evaluations: ``{suffix: context factory}``.

        For each entry, val and test are evaluated again inside ``factory()`` and written as rows
        ``val_<suffix>`` / ``test_<suffix>`` (e.g. fair_mask's ``unmasked`` rows).
        """
        return {}

    def extra_results(self) -> dict:
        """Extra scalar columns for every results row."""
        return {}

    def state_dict(self) -> dict:
        """Method state saved in checkpoints (for exact resume)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""

    def state_for_release(self, selected: dict) -> dict:
        """The method state to evaluate and save the released model with, given ``selected``, the method
        state stored with the selected (best-validation) checkpoint; called at the end of training.

        Most methods return ``selected``. A method whose state describes the whole training run rather than
        the selected weights keeps that part from the end of training: a privacy accountant must cover every
        step trained, because choosing a checkpoint after seeing all of them is post-processing of the
        whole trajectory (Abadi et al., CCS 2016; Opacus and TF-Privacy report ε this way).
        """
        return selected
