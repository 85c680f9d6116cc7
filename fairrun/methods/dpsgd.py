"""DP-SGD through Opacus: per-example clipping, Gaussian noise, Poisson sampling, privacy accounting."""
from __future__ import annotations

import logging
import math
from collections import deque
from contextlib import nullcontext
import warnings
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler

from fairrun import rundir
from fairrun.methods import privacy
from fairrun.core.validation import require, require_choice
from fairrun.data.batches import batches_of, epoch_order, num_batches
from fairrun.core.errors import ConfigError
from fairrun.methods.base import Batch, Method, TrainingPlan
from fairrun.methods.registry import register
from fairrun.methods.resample import balanced_probs, cell_ids, undersample_index

log = logging.getLogger("fairrun")

GRAD_SAMPLE_MODES = ("auto", "hooks", "ghost", "functorch")
BALANCE = ("none", "over", "under", "reweight")
BALANCE_BY = ("group", "group_label")
# Where Opacus' ghost clipping (per-example gradient norms without per-example gradients, at the price of a
# second backward pass) beat per-example gradients by hooks in scripts/bench_dpsgd.py on the CPU: 13x for mlp
# (a wide first Linear layer). For convolutional models hooks were faster (cnn: 1.72x ERM's step time vs 2.15x
# with ghost; resnet18 at batch 32: 2.79x vs 3.19x), and for logreg (2.7x vs 3.1x).
GHOST_FIRST = ("mlp",)

warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed")
logging.getLogger("opacus").setLevel(logging.WARNING)  # fairrun logs its own one-line summary of the changes


@dataclass
class DPSGDConfig:
    """``method=dpsgd``: noise (or a target ε), clipping norm, δ, accountant, sampling and memory keys."""

    name: str = "dpsgd"
    # σ (noise std = σ * max_grad_norm): 1.0, or null once target_epsilon is set
    noise_multiplier: Optional[float] = 1.0
    # e.g. method.target_epsilon=8: Opacus picks σ so that trainer.epochs of training spend this ε
    target_epsilon: Optional[float] = None
    max_grad_norm: float = 1.0  # C: per-example gradient clipping norm (L2, over all parameters)
    # null = largest power of ten below 1/N (N = training-set size), e.g. 1e-5 for N = 30,000
    delta: Optional[float] = None
    accountant: str = "rdp"  # rdp | prv | gdp (Opacus accountants; rdp matches most published ε)
    # each example joins each batch with probability B/N (what the privacy analysis assumes)
    poisson_sampling: bool = True
    # auto (ghost for mlp, hooks otherwise: the faster in scripts/bench_dpsgd.py) | hooks | ghost | functorch
    grad_sample_mode: str = "auto"
    # e.g. 64: split each logical batch (trainer.batch_size) into chunks of at most this size
    physical_batch_size: Optional[int] = None
    # none | over (group-balanced Poisson sampling) | under (balanced subset); reweight is refused
    balance: str = "none"
    balance_by: str = "group"  # group | group_label: the cells that balance=over/under equalise

    def validate(self) -> None:
        privacy.validate_privacy_keys(self, clip_key="max_grad_norm")
        require_choice("method.grad_sample_mode", self.grad_sample_mode, GRAD_SAMPLE_MODES)
        require_choice("method.balance", self.balance, BALANCE)
        require_choice("method.balance_by", self.balance_by, BALANCE_BY)
        if self.physical_batch_size is not None:
            require(self.physical_batch_size >= 1, "method.physical_batch_size", self.physical_batch_size,
                    "null (no splitting) or an integer >= 1")
        if self.balance == "reweight":
            raise ConfigError(
                "method.balance=reweight cannot be combined with method=dpsgd: DP-SGD clips every example's "
                "gradient to max_grad_norm before averaging, so a loss weight w > 1 is undone by the clipping "
                "for exactly the examples reweighting wants to emphasise, and weighting after clipping would "
                "raise the sensitivity (and ε) by max(w). Use method.balance=over (group-balanced Poisson "
                "sampling, accounted at the largest inclusion probability) or method.balance=under (a balanced "
                "subset), or method.balance=none."
            )

    def validate_run(self, run) -> None:
        """Cross-section rules: Opacus' per-example gradients need float32 and an uncompiled model."""
        if run.gpu.amp != "off":
            raise ConfigError(f"gpu.amp={run.gpu.amp} cannot be used with method=dpsgd: Opacus computes and clips "
                              f"per-example gradients in float32 and does not support a gradient scaler. Use "
                              f"gpu.amp=off.")
        if run.gpu.compile:
            raise ConfigError("gpu.compile=true cannot be used with method=dpsgd: torch.compile does not work with "
                              "Opacus' per-example-gradient hooks. Use gpu.compile=false.")
        if run.model.name.startswith("resnet") and getattr(run.model, "pretrained", False):
            log.info("dpsgd: the pretrained ResNet's BatchNorm layers become GroupNorm, whose weights start afresh")


class PoissonBatches(Sampler):
    """The logical batches of one epoch: at step k every row i joins independently with probability
    ``rates[i]``, drawn from a generator seeded by (seed, epoch, k), so any step can be redrawn exactly."""

    def __init__(self, rates: torch.Tensor, steps: int, seed: int, epoch: int, first_step: int = 0):
        self.rates, self.steps, self.seed, self.epoch, self.first_step = rates, steps, seed, epoch, first_step

    def draw(self, step: int) -> np.ndarray:
        generator = torch.Generator().manual_seed((self.seed * 100_003 + self.epoch) * 1_000_003 + step + 11)
        mask = torch.rand(len(self.rates), generator=generator, dtype=torch.float64) < self.rates
        return torch.nonzero(mask).flatten().numpy()

    def __iter__(self):
        for step in range(self.first_step, self.steps):
            yield self.draw(step)

    def __len__(self) -> int:
        return self.steps - self.first_step


class ShuffledBatches(Sampler):
    """Fixed-size batches of a seeded permutation (``poisson_sampling=false``)."""

    def __init__(self, order: torch.Tensor, batch_size: int, first_step: int = 0):
        self.order, self.batch_size, self.first_step = order.numpy(), batch_size, first_step

    def draw(self, step: int) -> np.ndarray:
        return self.order[step * self.batch_size:(step + 1) * self.batch_size]

    def __iter__(self):
        for step in range(self.first_step, num_batches(len(self.order), self.batch_size)):
            yield self.draw(step)

    def __len__(self) -> int:
        return num_batches(len(self.order), self.batch_size) - self.first_step


class RecordingSampler(Sampler):
    """Passes a logical-batch sampler through and notes, per physical batch to come, whether it ends its
    logical batch (so the loop checkpoints only between logical batches)."""

    def __init__(self, inner: Sampler, physical: Optional[int]):
        self.inner, self.physical, self.ends = inner, physical, deque()

    def __iter__(self):
        for rows in self.inner:
            count = physical_count(len(rows), self.physical)
            self.ends.extend([False] * (count - 1) + [True])
            yield rows

    def __len__(self) -> int:
        return len(self.inner)


def physical_count(size: int, physical: Optional[int]) -> int:
    """Physical batches BatchMemoryManager cuts a logical batch of ``size`` rows into (an empty one: 1)."""
    return 1 if size == 0 or physical is None else math.ceil(size / physical)


def choose_grad_sample_mode(requested: str, model_name: str) -> str:
    """``auto``: ghost clipping for mlp, per-example gradients by hooks otherwise (the faster, measured)."""
    if requested != "auto":
        return requested
    return "ghost" if model_name in GHOST_FIRST else "hooks"


def per_example_module(model: nn.Module, mode: str, max_grad_norm: float, fallback: bool):
    """Opacus' per-example-gradient wrapper of ``model`` in ``mode``; with ``fallback`` (``auto``), a mode
    Opacus refuses for this model is replaced by the next of ghost → hooks → functorch."""
    from opacus.grad_sample.utils import wrap_model  # Opacus is imported when DP-SGD runs, not at start-up

    modes = [mode] + ([m for m in ("hooks", "functorch") if m != mode] if fallback else [])
    for i, candidate in enumerate(modes):
        try:
            extra = {"max_grad_norm": max_grad_norm} if candidate == "ghost" else {}
            return wrap_model(model, candidate, batch_first=True, loss_reduction="mean", **extra), candidate
        except (NotImplementedError, ValueError) as err:
            if i + 1 == len(modes):
                raise ConfigError(f"Opacus cannot compute per-example gradients for this model with "
                                  f"method.grad_sample_mode={candidate}: {err}. Try another grad_sample_mode "
                                  f"(hooks, ghost, functorch) or model.") from None
            log.warning("dpsgd: grad_sample_mode=%s is not supported for this model (%s); trying %s",
                        candidate, err, modes[i + 1])


@register
class DPSGD(Method):
    """Differentially private SGD (M. Abadi, A. Chu, I. Goodfellow, H. B. McMahan, I. Mironov, K. Talwar and
    L. Zhang, "Deep Learning with Differential Privacy", CCS 2016), implemented by Opacus (A. Yousefpour et
    al., "Opacus: User-Friendly Differential Privacy Library in PyTorch", 2021).

    Every step takes a Poisson sample of the training set (row i with probability q_i; q = B/N without
    balancing), clips each example's gradient to L2 norm C = ``max_grad_norm``, sums, adds
    N(0, σ² C² I) and divides by the expected batch size B: ``g = (Σ_i clip_C(∇ℓ_i) + N(0, σ²C²I)) / B``.
    Opacus' accountant (``method.accountant``: RDP, PRV or GDP) composes the sampled Gaussian mechanism over
    the steps taken and gives ε at δ (``method.delta``, default the largest power of ten below 1/N).
    With ``target_epsilon``, σ is Opacus' binary-search solution for the planned number of steps.

    ``balance=over`` samples each protected cell with equal total probability (q_i ∝ 1/n_cell, Σ q_i = B),
    which is resampling done soundly: an example appears at most once per batch, and the accountant uses the
    largest inclusion probability max_i q_i, so ε bounds the privacy loss of every example, the rarest
    group's included (which is therefore larger than with uniform sampling). ``balance=under`` trains on a
    balanced subset; the choice of that subset looks at group counts and is not covered by ε.
    Reweighting is refused (see :meth:`DPSGDConfig.validate`).

    Bagdasaryan, Poursaeed and Shmatikov ("Differential Privacy Has Disparate Impact on Model Accuracy",
    NeurIPS 2019) show why this method belongs in a fairness runner: clipping and noise cost the
    under-represented groups the most accuracy.
    """

    name = "dpsgd"
    Config = DPSGDConfig

    def __init__(self, cfg, *, num_classes: int, num_groups: int):
        super().__init__(cfg, num_classes=num_classes, num_groups=num_groups)
        self.probs: Optional[torch.Tensor] = None
        self.notes: list[str] = []
        self.architecture = ""
        self.optimizer = None
        self.dp_loss = None
        self.accountant = None
        self.noise_generator: Optional[torch.Generator] = None
        self.boundary = True
        self.info: dict = {}  # sigma, delta, sample_rate, accountant, mode: saved with every checkpoint

    # -- before training ----------------------------------------------------------------------
    def adapt_model(self, model: nn.Module) -> nn.Module:
        model, self.notes = privacy.opacus_compatible(model)
        for note in self.notes:
            log.warning("dpsgd: %s; the private model is a different architecture from the non-private one", note)
        self.architecture = str(model)
        return model

    def prepare(self, train):
        if self.cfg.balance == "under":
            cells, num_cells = cell_ids(train, self.cfg.balance_by)
            index = undersample_index(cells, num_cells, seed=0)
            log.info("dpsgd (balance=under): a balanced subset of %d of %d rows; ε covers the subset's members, "
                     "not the choice of the subset", len(index), len(train))
            return train.subset(index.to(train.y.device))
        if self.cfg.balance == "over":
            cells, num_cells = cell_ids(train, self.cfg.balance_by)
            self.probs = balanced_probs(cells, num_cells)
        return train

    def inclusion_rates(self, n: int, batch_size: int) -> torch.Tensor:
        """Per-row Poisson inclusion probability (float64, CPU): B/N, or B p_i (capped at 1) when balanced."""
        if self.probs is None:
            return torch.full((n,), min(1.0, batch_size / n), dtype=torch.float64)
        return (batch_size * self.probs).clamp(max=1.0)

    def wrap(self, model: nn.Module, optimizer: torch.optim.Optimizer, plan: TrainingPlan):
        cfg, n = self.cfg, len(plan.train)
        self.plan = plan
        self.rates = self.inclusion_rates(n, plan.batch_size)
        sample_rate = float(self.rates.max())
        expected_batch = float(self.rates.sum()) if cfg.poisson_sampling else float(plan.batch_size)
        steps = plan.epochs * num_batches(n, plan.batch_size)
        delta = cfg.delta if cfg.delta is not None else privacy.default_delta(n)
        sigma = cfg.noise_multiplier
        if sigma is None:
            sigma = privacy.noise_for_epsilon(cfg.target_epsilon, delta, sample_rate, steps, cfg.accountant)
            log.info("dpsgd: noise multiplier %.4f reaches ε=%.3g at δ=%g over %d steps at sampling rate %.4g",
                     sigma, cfg.target_epsilon, delta, steps, sample_rate)
        mode = choose_grad_sample_mode(cfg.grad_sample_mode, plan.model_name)
        if not cfg.poisson_sampling:
            log.warning("dpsgd: method.poisson_sampling=false: shuffled fixed-size batches; ε is computed as if "
                        "batches were Poisson samples (as Opacus and most papers do), which the analysis does "
                        "not strictly cover")
        self.info = {"sigma": float(sigma), "delta": float(delta), "sample_rate": sample_rate,
                     "accountant": cfg.accountant, "mode": mode, "expected_batch": expected_batch}
        self.noise_generator = torch.Generator(device=plan.device).manual_seed(plan.seed + 12_345)
        module, mode = per_example_module(model, mode, cfg.max_grad_norm, fallback=cfg.grad_sample_mode == "auto")
        self.info["mode"] = mode
        from opacus.optimizers import get_optimizer_class
        optimizer_class = get_optimizer_class(clipping="flat", distributed=False, grad_sample_mode=mode)
        self.optimizer = optimizer_class(optimizer, noise_multiplier=sigma, max_grad_norm=cfg.max_grad_norm,
                                         expected_batch_size=expected_batch, loss_reduction="mean",
                                         generator=self.noise_generator)
        if self.accountant is None:
            self.accountant = privacy.make_accountant(cfg.accountant)
        self.optimizer.attach_step_hook(self.accountant.get_optimizer_hook_fn(sample_rate=sample_rate))
        if mode == "ghost":
            from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
            self.dp_loss = DPLossFastGradientClipping(module, self.optimizer, nn.CrossEntropyLoss(), "mean")
        self.module = module
        log.info("dpsgd: σ=%.4g, C=%g, δ=%g, sampling rate %.4g (%s), expected batch %.1f, %s accountant, "
                 "per-example gradients by Opacus '%s'%s", sigma, cfg.max_grad_norm, delta, sample_rate,
                 "Poisson" if cfg.poisson_sampling else "shuffled", expected_batch, cfg.accountant, mode,
                 f", physical batches of at most {cfg.physical_batch_size}" if cfg.physical_batch_size else "")
        return model, self.optimizer

    # -- training -----------------------------------------------------------------------------
    def logical_sampler(self, plan: TrainingPlan, epoch: int, first_step: int) -> Sampler:
        steps = num_batches(len(plan.train), plan.batch_size)
        if self.cfg.poisson_sampling:
            return PoissonBatches(self.rates, steps, plan.seed, epoch, first_step)
        return ShuffledBatches(epoch_order(plan.train, plan.seed, epoch), plan.batch_size, first_step)

    def epoch_batches(self, plan: TrainingPlan, epoch: int, start_step: int) -> Iterator[Batch]:
        """Poisson-sampled logical batches, cut into physical ones by Opacus' BatchMemoryManager.

        ``start_step`` counts physical batches; a resumed epoch starts at a logical-batch boundary (the
        loop checkpoints only there), found by redrawing the logical batches already taken.
        """
        physical = self.cfg.physical_batch_size
        probe = self.logical_sampler(plan, epoch, 0)
        first_logical, done = 0, 0
        while done < start_step:
            done += physical_count(len(probe.draw(first_logical)), physical)
            first_logical += 1
        sampler = RecordingSampler(self.logical_sampler(plan, epoch, first_logical), physical)
        # a generator of its own: a DataLoader iterator otherwise draws its base seed from the global RNG, one
        # draw more in a resumed epoch than in an uninterrupted one, which shifts every later dropout mask
        loader = DataLoader(range(len(plan.train)), batch_sampler=sampler, collate_fn=index_tensor,
                            generator=torch.Generator().manual_seed(0))
        from opacus.utils.batch_memory_manager import BatchMemoryManager
        manager = (BatchMemoryManager(data_loader=loader, max_physical_batch_size=physical, optimizer=self.optimizer)
                   if physical is not None else nullcontext(loader))
        with manager as chunks:
            for batch in batches_of(plan.train, chunks, plan.device, plan.channels_last, plan.augmentation,
                                    plan.seed, epoch, first_batch=start_step):
                self.boundary = sampler.ends.popleft()
                yield batch

    def at_boundary(self) -> bool:
        return self.boundary

    def loss(self, outputs, batch):
        if self.dp_loss is not None:
            return self.dp_loss(outputs.logits.float(), batch.y)
        return F.cross_entropy(outputs.logits.float(), batch.y)

    # -- results ------------------------------------------------------------------------------
    def epsilon(self) -> float:
        return privacy.epsilon_of(self.accountant, self.info["delta"]) if self.accountant is not None else 0.0

    def steps_taken(self) -> int:
        return int(sum(steps for _, _, steps in self.accountant.history)) if self.accountant is not None else 0

    def epoch_scalars(self) -> dict:
        return {"privacy/epsilon": self.epsilon()}

    def extra_results(self) -> dict:
        info = self.info
        return {**privacy.privacy_columns(self.epsilon(), info["delta"], info["sigma"], self.cfg.max_grad_norm,
                                          info["sample_rate"], self.steps_taken(), info["accountant"]),
                "dp_grad_sample_mode": info["mode"], "dp_model_changes": "; ".join(self.notes) or "none"}

    def write_files(self, run_dir) -> None:
        rundir.write_text(f"# model as trained by method=dpsgd ({'; '.join(self.notes) or 'unchanged'})\n"
                          f"{self.architecture}\n", run_dir / "architecture.txt")

    def state_dict(self) -> dict:
        state = {"info": dict(self.info), "accountant": self.accountant.state_dict() if self.accountant else None}
        if self.noise_generator is not None:
            state["noise_generator"] = self.noise_generator.get_state()
        return state

    def state_for_release(self, selected: dict) -> dict:
        """The accountant as at the end of training: ε and ``dp_steps`` cover every step trained, whichever
        epoch's weights are released (selecting a checkpoint is post-processing of the whole run)."""
        return {**selected, "accountant": self.accountant.state_dict() if self.accountant else None}

    def load_state_dict(self, state: dict) -> None:
        self.info = dict(state.get("info", {}))
        if state.get("accountant") is not None:
            if self.accountant is None:
                self.accountant = privacy.make_accountant(self.info["accountant"])
            self.accountant.load_state_dict(state["accountant"])
        if self.noise_generator is not None and "noise_generator" in state:
            self.noise_generator.set_state(state["noise_generator"])


def index_tensor(rows: list) -> torch.Tensor:
    """Collate the row numbers of one physical batch into an index tensor."""
    return torch.as_tensor(rows, dtype=torch.long)
