"""DP-FedAvg: federated averaging with user-level differential privacy, simulated in one process."""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from torch import nn

from fairrun import rundir
from fairrun.core.validation import require, require_choice
from fairrun.data.batches import batches_of
from fairrun.core.errors import FairrunError
from fairrun.methods.base import Method, StepResult, TrainingPlan
from fairrun.methods.fedavg_clients import (DIRICHLET_OVER, PARTITIONS, flatten_into, make_partition,
                                            partition_table, seed_of, unflatten_from, untrained)
from fairrun.methods.registry import register
from fairrun.methods.privacy import (ACCOUNTANTS, default_delta, epsilon_for, epsilon_of, make_accountant,
                             noise_for_epsilon, opacus_compatible, privacy_columns, validate_privacy_keys)

log = logging.getLogger("fairrun")

# Stream tags: every random draw is a function of (seed, tag[, round[, client]]) only (the partition's:
# fedavg_clients.PARTITION_STREAM, 0xFED0).
_SAMPLING, _LOCAL_ORDER, _NOISE, _DROPOUT = 0xFED1, 0xFED2, 0xFED3, 0xFED4
ARCHITECTURE_FILE = "architecture.txt"


@dataclass
class DPFedAvgConfig:
    """``method=dp_fedavg``: the federation (clients, partition, sampling, local training, server
    optimiser) and, with ``private: true``, user-level DP (clipping norm, noise or target ε, δ,
    accountant)."""

    name: str = "dp_fedavg"
    # W: the training set is split once into this many clients; null with partition=identity (W = the people)
    num_clients: Optional[int] = 1000
    # iid: equal random parts | group: one protected group per client | dirichlet | identity: one client per
    # person (CelebA's identity_CelebA.txt; num_clients must be null)
    partition: str = "iid"
    # partition=dirichlet: skew the clients' label (train.y) | group (train.g) mix
    dirichlet_over: str = "label"
    alpha: float = 0.5  # Dirichlet concentration, > 0 (small = each client holds few classes; 100 = near iid)
    # q in (0, 1]: each client takes part in a round independently with probability q
    client_rate: float = 0.125
    local_epochs: int = 1  # local epochs of plain SGD over the client's rows (batch size: trainer.batch_size)
    client_lr: float = 1.0  # local plain-SGD learning rate
    rounds: int = 120  # T: communication rounds (the length of training)
    # rounds per loop epoch: validation, checkpoints and TensorBoard scalars every N rounds
    rounds_per_epoch: int = 10
    server_lr: float = 1.0  # server SGD on the pseudo-gradient -Δ (1 with momentum 0 = plain averaging)
    server_momentum: float = 0.9  # server SGD momentum in [0, 1) (0.9 = FedAvgM; 0 = plain averaging)
    private: bool = True  # true: clip + noise + user-level accounting | false: plain FedAvg (no DP; ε = NaN)
    clip: float = 1.0  # S: each client update Δ_k is scaled to L2 norm <= S (flat, over all parameters)
    # σ: noise std σ S / (q W) on the averaged update: 1.0, or null once target_epsilon is set
    noise_multiplier: Optional[float] = 1.0
    # e.g. method.target_epsilon=8: σ chosen so the `rounds` planned rounds spend this ε
    target_epsilon: Optional[float] = None
    # δ of the per-client (ε, δ) guarantee; null = largest power of ten below 1/num_clients
    delta: Optional[float] = None
    accountant: str = "rdp"  # Opacus accountant: rdp | prv | gdp

    def validate(self) -> None:
        require_choice("method.partition", self.partition, PARTITIONS)
        if self.partition == "identity":
            require(self.num_clients is None, "method.num_clients", self.num_clients,
                    "null with method.partition=identity (one client per person: W is the number of distinct "
                    "identities in the training set; pass method.num_clients=null)")
        else:
            require(self.num_clients is not None and self.num_clients >= 1, "method.num_clients",
                    self.num_clients, "an integer >= 1 (null only with method.partition=identity)")
        require_choice("method.dirichlet_over", self.dirichlet_over, DIRICHLET_OVER)
        require(math.isfinite(self.alpha) and self.alpha > 0, "method.alpha", self.alpha,
                "a number > 0 (the Dirichlet concentration; small = skewed clients)")
        require(math.isfinite(self.client_rate) and 0 < self.client_rate <= 1, "method.client_rate",
                self.client_rate, "a number in (0, 1]: the probability that each client takes part in a "
                                  "round")
        require(self.local_epochs >= 1, "method.local_epochs", self.local_epochs, "an integer >= 1")
        require(math.isfinite(self.client_lr) and self.client_lr > 0, "method.client_lr", self.client_lr,
                "a number > 0")
        require(self.rounds >= 1, "method.rounds", self.rounds, "an integer >= 1")
        require(self.rounds_per_epoch >= 1, "method.rounds_per_epoch", self.rounds_per_epoch,
                "an integer >= 1")
        require(math.isfinite(self.server_lr) and self.server_lr > 0, "method.server_lr", self.server_lr,
                "a number > 0 (1 = plain averaging)")
        require(0 <= self.server_momentum < 1, "method.server_momentum", self.server_momentum,
                "a number in [0, 1) (0 = plain averaging, 0.9 = FedAvgM)")
        if self.private:
            validate_privacy_keys(self, clip_key="clip")
        else:
            require_choice("method.accountant", self.accountant, ACCOUNTANTS)


@register
class DPFedAvg(Method):
    """Federated averaging with user-level differential privacy (DP-FedAvg: H. B. McMahan, D. Ramage,
    K. Talwar and L. Zhang, "Learning Differentially Private Recurrent Language Models", ICLR 2018), and
    with ``private: false`` plain FedAvg (H. B. McMahan, E. Moore, D. Ramage, S. Hampson and B. Agüera y
    Arcas, "Communication-Efficient Learning of Deep Networks from Decentralized Data", AISTATS 2017),
    simulated in one process.

    The training set is split once into ``W = num_clients`` clients (``partition``: ``iid`` equal random
    parts; ``group``: every client holds one protected group, clients allotted to groups in proportion to
    their sizes; ``dirichlet``: for every class k of ``dirichlet_over`` (label or group),
    ``p_k ~ Dir(alpha 1_W)`` and class k's rows are divided among the clients by ``p_k``, as in Hsu, Qi &
    Brown 2019, "Measuring the effects of non-identical data distribution for federated visual
    classification"; ``identity``: every client is one person, CelebA's identity_CelebA.txt, and ``W`` is
    the number of distinct people in the (imbalance-sampled) training set, ``num_clients`` null). Then, for
    every round ``t = 1..T`` (``T = rounds``):

    1. every client is selected independently with probability ``q = client_rate`` (Poisson sampling of
       users);
    2. each selected client ``k`` copies the global weights ``w``, runs ``local_epochs`` epochs of plain SGD
       (lr ``client_lr``, ``trainer.batch_size``, mean cross-entropy) over its own rows and returns
       ``Δ_k = w_k - w`` (trainable parameters);
    3. private: ``Δ = (Σ_k Δ_k min(1, S / ||Δ_k||)) / (q W) + N(0, (σ S / (q W))² I)`` (flat clipping to
       ``S = clip``, the fixed-denominator estimator, Gaussian noise with ``σ = noise_multiplier``; a round
       that samples nobody still adds the noise). Plain: ``Δ = Σ_k n_k Δ_k / Σ_k n_k`` (no update if nobody
       with data was sampled);
    4. the server optimiser ``SGD(lr=server_lr, momentum=server_momentum)`` steps with gradient ``-Δ``
       (lr 1, momentum 0: ``w <- w + Δ``; momentum 0.9: FedAvgM).

    Privacy is user-level (a client's whole data set is the unit): each round is one sampled Gaussian
    mechanism at rate ``q`` with noise ``σ``, composed by an Opacus accountant (``accountant``); with
    ``target_epsilon`` σ is found so that the ``T`` planned rounds spend it. δ defaults to the largest power
    of ten below ``1 / W``. The reported ε is that of the kept (best-validation) checkpoint's rounds.

    BatchNorm is replaced by GroupNorm (Opacus ``ModuleValidator.fix``) in private and plain mode alike, so
    both train the same architecture and no running statistics of client data are shared. ``trainer.lr``,
    ``trainer.optimizer`` and ``trainer.epochs`` are not used (``trainer.scheduler``, if set, scales
    ``server_lr`` once per ``rounds_per_epoch`` rounds); local training runs in float32. Every random draw
    is a function of (seed, round[, client]), so an interrupted run resumes exactly at a round boundary.
    """

    name = "dp_fedavg"
    Config = DPFedAvgConfig

    def __init__(self, cfg, *, num_classes: int, num_groups: int):
        super().__init__(cfg, num_classes=num_classes, num_groups=num_groups)
        self.notes: list[str] = []
        self.model: Optional[nn.Module] = None
        self.clients: list[torch.Tensor] = []
        self.rounds_done = 0
        self.noise_multiplier = cfg.noise_multiplier if cfg.private else None
        self.num_clients = cfg.num_clients  # W; partition=identity: the number of people, known in wrap()
        self.delta = cfg.delta
        if cfg.delta is None and cfg.num_clients is not None:
            self.delta = default_delta(cfg.num_clients)
        self.accountant = make_accountant(cfg.accountant)
        self.epoch = 0
        self._client_model: Optional[nn.Module] = None
        self._epsilon_cache: tuple = (None, float("nan"))

    # -- set-up ------------------------------------------------------------------------------------
    def adapt_model(self, model: nn.Module) -> nn.Module:
        model, self.notes = opacus_compatible(model)
        for note in self.notes:
            log.warning("dp_fedavg: %s, in private and plain mode alike (clients share no normalisation "
                        "statistics)", note)
        return model

    def wrap(self, model: nn.Module, optimizer: torch.optim.Optimizer, plan: TrainingPlan):
        cfg = self.cfg
        self.plan, self.model = plan, model
        train = plan.train
        self.clients = make_partition(train.y, train.g, train.num_classes, train.num_groups, cfg, plan.seed,
                                      identity=getattr(train, "identity", None))
        self.num_clients = len(self.clients)  # cfg.num_clients, or the number of people (partition=identity)
        if cfg.delta is None:
            self.delta = default_delta(self.num_clients)
        over = f" over {cfg.dirichlet_over}, alpha={cfg.alpha:g}" if cfg.partition == "dirichlet" else ""
        over += ": one client per person, W = the distinct identities" if cfg.partition == "identity" else ""
        log.info("dp_fedavg: %d training rows split into %d clients (partition=%s%s, seed %d); rows per "
                 "client:\n%s", len(train), self.num_clients, cfg.partition, over, plan.seed,
                 partition_table(self.clients, train.g, list(train.group_names)).to_string())
        log.info("dp_fedavg: trainer.optimizer, trainer.lr and trainer.epochs are not used: clients run "
                 "plain SGD at method.client_lr=%g for %d local epoch(s), the server SGD(lr=%g, "
                 "momentum=%g), and the run lasts method.rounds=%d rounds (%d per epoch)", cfg.client_lr,
                 cfg.local_epochs, cfg.server_lr, cfg.server_momentum, cfg.rounds, cfg.rounds_per_epoch)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.server_optimizer = torch.optim.SGD(self.params, lr=cfg.server_lr, momentum=cfg.server_momentum)
        if cfg.private:
            if cfg.target_epsilon is not None:
                self.noise_multiplier = noise_for_epsilon(cfg.target_epsilon, self.delta, cfg.client_rate,
                                                          cfg.rounds, cfg.accountant)
            planned = float("inf")
            if self.noise_multiplier > 0:
                planned = epsilon_for(cfg.accountant, self.noise_multiplier, cfg.client_rate, cfg.rounds,
                                      self.delta)
            log.info("dp_fedavg: user-level DP, clip S=%g, noise multiplier σ=%.4g (noise std %.4g on the "
                     "average update), q=%g (%.1f clients per round expected), δ=%g: ε=%.4g after the %d "
                     "planned rounds (%s accountant)", cfg.clip, self.noise_multiplier,
                     self.noise_multiplier * cfg.clip / (cfg.client_rate * self.num_clients), cfg.client_rate,
                     cfg.client_rate * self.num_clients, self.delta, planned, cfg.rounds, cfg.accountant)
            if self.noise_multiplier == 0:
                log.warning("dp_fedavg: method.noise_multiplier=0: updates are clipped but not noised, so "
                            "the run has no privacy guarantee (ε = inf)")
        else:
            log.info("dp_fedavg: method.private=false: plain FedAvg (no clipping, no noise, not a DP run)")
        return model, self.server_optimizer

    def schedule(self, plan: TrainingPlan) -> tuple[int, int]:
        return math.ceil(self.cfg.rounds / self.cfg.rounds_per_epoch), self.cfg.rounds_per_epoch

    # -- rounds ----------------------------------------------------------------------------------
    def epoch_batches(self, plan: TrainingPlan, epoch: int, start_step: int) -> Iterator[StepResult]:
        self.epoch = epoch
        per_epoch = self.cfg.rounds_per_epoch
        for t in range(epoch * per_epoch + start_step, min(self.cfg.rounds, (epoch + 1) * per_epoch)):
            yield self.run_round(t)

    def sampled_clients(self, t: int) -> np.ndarray:
        """The clients of round ``t``: each independently with probability q (seeded by (seed, t))."""
        rng = np.random.default_rng([self.plan.seed, _SAMPLING, t])
        return np.flatnonzero(rng.random(self.num_clients) < self.cfg.client_rate)

    def client_model(self) -> nn.Module:
        """The one model every client trains in turn (a copy of the global model, made once)."""
        if self._client_model is None:
            self._client_model = copy.deepcopy(self.model)
            self._client_params = [p for p in self._client_model.parameters() if p.requires_grad]
            self._client_optimizer = torch.optim.SGD(self._client_params, lr=self.cfg.client_lr)
            self._fixed = list(zip(untrained(self._client_model), untrained(self.model)))
            size = sum(p.numel() for p in self.params)
            device, dtype = self.params[0].device, self.params[0].dtype
            self._global_vec, self._work, self._sum = (torch.empty(size, device=device, dtype=dtype)
                                                       for _ in range(3))
        return self._client_model

    def train_client(self, t: int, k: int, loss_acc: torch.Tensor, correct_acc: torch.Tensor) -> int:
        """Local SGD of client ``k`` in round ``t`` from the global weights; leaves its Δ_k in ``self._work``.

        Returns the number of examples processed; adds the summed loss and the number correct to the
        accumulators."""
        cfg, plan = self.cfg, self.plan
        model = self.client_model()
        unflatten_from(self._global_vec, self._client_params)
        with torch.no_grad():
            for mine, theirs in self._fixed:
                mine.copy_(theirs)
        model.train()
        rows = self.clients[k]
        generator = torch.Generator().manual_seed(seed_of(plan.seed, _LOCAL_ORDER, t, k))
        chunks = [chunk for _ in range(cfg.local_epochs)
                  for chunk in rows[torch.randperm(len(rows), generator=generator)].split(plan.batch_size)]
        seen = 0
        # augmentation draws: batch_generator(seed, t * W + k, batch number within the client's round)
        for batch in batches_of(plan.train, chunks, plan.device, plan.channels_last, plan.augmentation,
                                plan.seed, t * self.num_clients + k, first_batch=0):
            self._client_optimizer.zero_grad(set_to_none=True)
            outputs = self.forward(model, batch.x)
            loss = self.per_sample_loss(outputs, batch).mean()
            loss.backward()
            self._client_optimizer.step()
            n = len(batch.y)
            loss_acc += loss.detach() * n
            correct_acc += (outputs.logits.detach().argmax(dim=1) == batch.y).sum()
            seen += n
        flatten_into(self._client_params, self._work).sub_(self._global_vec)
        return seen

    def run_round(self, t: int) -> StepResult:
        """One round: sample clients, train them locally, aggregate (clip + noise), step the server."""
        cfg = self.cfg
        self.client_model()
        flatten_into(self.params, self._global_vec)
        self._sum.zero_()
        device = self._global_vec.device
        loss_acc = torch.zeros((), device=device, dtype=torch.float64)
        correct_acc = torch.zeros((), device=device, dtype=torch.int64)
        seen, data_weight = 0, 0
        # The model's own randomness (dropout) is drawn from (seed, round, client) too, without moving
        # the global generators.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for k in self.sampled_clients(t):
                n_k = len(self.clients[k])
                if n_k == 0:  # an empty client's update is zero
                    continue
                model_seed = seed_of(self.plan.seed, _DROPOUT, t, int(k))
                torch.random.default_generator.manual_seed(model_seed)
                if device.type == "cuda":
                    torch.cuda.manual_seed(model_seed)
                seen += self.train_client(t, int(k), loss_acc, correct_acc)
                if cfg.private:
                    factor = (cfg.clip / self._work.norm().clamp_min(1e-12)).clamp(max=1.0)
                    self._sum.addcmul_(self._work, factor)  # Δ_k min(1, S / ||Δ_k||), no sync
                else:
                    self._sum.add_(self._work, alpha=float(n_k))
                    data_weight += n_k
        if cfg.private:
            scale = cfg.client_rate * self.num_clients
            update = self._sum.div_(scale)
            std = self.noise_multiplier * cfg.clip / scale
            if std > 0:
                generator = torch.Generator(device=device).manual_seed(seed_of(self.plan.seed, _NOISE, t))
                update.add_(torch.randn(update.shape, generator=generator, device=device, dtype=update.dtype),
                            alpha=std)
            self.server_step(update)
            self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=cfg.client_rate)
        elif data_weight > 0:
            self.server_step(self._sum.div_(data_weight))
        self.rounds_done = t + 1
        loss = float(loss_acc) / seen if seen else 0.0
        if not math.isfinite(loss):
            raise FairrunError(f"The clients' training loss became {loss} in round {t + 1}; lower "
                               f"method.client_lr or check the data.")
        return StepResult(loss, int(correct_acc), seen)

    def server_step(self, update: torch.Tensor) -> None:
        """Server optimiser step with the pseudo-gradient ``-update`` (the averaged, noised Δ)."""
        offset = 0
        for p in self.params:
            n = p.numel()
            if p.grad is None:
                p.grad = torch.empty_like(p)
            p.grad.copy_(update[offset:offset + n].view(p.shape)).neg_()
            offset += n
        self.server_optimizer.step()
        self.server_optimizer.zero_grad(set_to_none=True)

    # -- reporting ---------------------------------------------------------------------------------
    def epsilon(self) -> float:
        """ε spent by the rounds done so far (NaN in plain mode)."""
        if not self.cfg.private:
            return float("nan")
        if self.noise_multiplier == 0 and self.accountant.history:
            return float("inf")  # clipping without noise: no privacy
        key = (tuple(map(tuple, self.accountant.history)), self.delta)
        if self._epsilon_cache[0] != key:  # Opacus' conversion takes ~0.2 s; reports ask several times
            self._epsilon_cache = (key, epsilon_of(self.accountant, self.delta))
        return self._epsilon_cache[1]

    def epoch_scalars(self) -> dict:
        cfg = self.cfg
        first = self.epoch * cfg.rounds_per_epoch
        rounds = range(first, min(cfg.rounds, first + cfg.rounds_per_epoch))
        sampled = [len(self.sampled_clients(t)) for t in rounds]
        scalars = {"federated/clients_per_round": float(np.mean(sampled)) if sampled else 0.0}
        if cfg.private:
            scalars["privacy/epsilon"] = self.epsilon()
        return scalars

    def extra_results(self) -> dict:
        cfg = self.cfg
        if cfg.private:
            columns = privacy_columns(self.epsilon(), self.delta, self.noise_multiplier, cfg.clip,
                                      sample_rate=cfg.client_rate, steps=self.rounds_done,
                                      accountant=cfg.accountant)
        else:
            nan = float("nan")
            columns = {"epsilon": nan, "delta": nan, "noise_multiplier": nan, "max_grad_norm": nan,
                       "dp_sample_rate": cfg.client_rate, "dp_steps": self.rounds_done, "dp_accountant": None}
        columns.update(fl_num_clients=self.num_clients, fl_partition=cfg.partition, fl_private=cfg.private,
                       fl_rounds=cfg.rounds, fl_local_epochs=cfg.local_epochs)
        return columns

    def after_fit(self, model, val, train=None) -> None:
        if self.cfg.private:
            log.info("dp_fedavg: %d rounds trained: ε=%.4g at δ=%g (user level, σ=%.4g, q=%g; ε covers every "
                     "round trained, whichever epoch's checkpoint is kept)",
                     self.rounds_done, self.epsilon(), self.delta, self.noise_multiplier,
                     self.cfg.client_rate)

    def write_files(self, run_dir) -> None:
        if self.model is None:
            return
        notes = "".join(f"# {note}\n" for note in self.notes) or "# architecture unchanged\n"
        rundir.write_text(f"# dp_fedavg: model as trained and evaluated\n{notes}{self.model}\n",
                          Path(run_dir) / ARCHITECTURE_FILE)

    # -- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"accountant": {"history": [list(h) for h in self.accountant.history],
                               "mechanism": self.accountant.mechanism()},
                "rounds_done": self.rounds_done, "noise_multiplier": self.noise_multiplier}

    def state_for_release(self, selected: dict) -> dict:
        """All of this method's state (accountant, rounds done) describes the whole run: ε and ``dp_steps``
        cover every round trained, whichever epoch's weights are released."""
        return self.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        saved = state["accountant"]
        self.accountant.load_state_dict({"history": [tuple(h) for h in saved["history"]],
                                         "mechanism": saved["mechanism"]})
        self.rounds_done = int(state["rounds_done"])
        self.noise_multiplier = state["noise_multiplier"]
