"""Steps per second of fairrun's training loop against a bare PyTorch loop, measured in one process.

Both loops train the same model (a copy of the Trainer's, with the same optimiser settings) on the same
in-memory training set with the same batch size. fairrun's loop is ``Trainer.fit`` itself (its batches,
progress bar, loss checks and read-backs); the bare loop indexes a shuffled batch, converts it to float,
and runs forward, cross-entropy, backward and the optimiser step, reading nothing back. Each repeat is one
epoch of each loop, alternately; the first ``--warmup`` steps of every epoch are left out, and fairrun's epoch
ends where its validation starts (after the epoch's last read-back), so validation and checkpoints are not
counted. The median over the repeats is reported, and the ratio fairrun / bare (1.0 = no overhead).

    python scripts/bench_loop.py                       # CPU
    python scripts/bench_loop.py --device cuda --size 64 --batch 256 --n-train 51200   # on a GPU
"""
from __future__ import annotations

import argparse
import copy
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from fairrun.config import validate_run_config
from fairrun.data.batches import to_float
from fairrun.training.loop import LoopState, Trainer
from fairrun.training.optimizers import build_optimizer

warnings.filterwarnings("ignore")
logging.getLogger("fairrun").setLevel(logging.ERROR)


class NeverStop:
    """A stop flag that is never raised."""

    requested = False
    exit_code = 0


class NoWriter:
    """A TensorBoard writer that writes nothing (the loop's scalars cost no disk time in either loop)."""

    def add_scalar(self, *args, **kwargs):
        """Ignore a scalar."""


def make_trainer(args, run_dir: Path) -> Trainer:
    """A Trainer of the synthetic dataset with the benchmark's sizes (one epoch per ``fit``)."""
    from hydra import compose, initialize_config_module

    overrides = [f"dataset.n_train={args.n_train}", "dataset.n_val=256", "dataset.n_test=256",
                 f"dataset.image_size={args.size}", "trainer.epochs=1", f"trainer.batch_size={args.batch}",
                 f"model={args.model}", f"gpu.device={args.device}"]
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        cfg = validate_run_config(compose(config_name="train", overrides=overrides))
    return Trainer(cfg, run_dir)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fairrun_epoch(trainer: Trainer, warmup: int) -> float:
    """Steps per second of one epoch of ``Trainer.fit``, from step ``warmup`` to the end of the epoch."""
    marks = {}
    method, validate = trainer.method, trainer.validate
    on_step = type(method).on_step

    def timed_on_step(global_step, total_steps):
        if global_step == warmup:
            sync(trainer.device)
            marks["start"] = time.perf_counter()
        on_step(method, global_step, total_steps)

    def timed_validate(writer):
        sync(trainer.device)
        marks["end"] = time.perf_counter()
        return validate(writer)

    method.on_step, trainer.validate = timed_on_step, timed_validate
    try:
        trainer.state = LoopState()
        trainer.fit(NoWriter(), NeverStop())
    finally:
        del method.on_step, trainer.validate
    return (trainer.steps_per_epoch - warmup) / (marks["end"] - marks["start"])


def bare_epoch(model, optimizer, images, labels, batch: int, warmup: int, device, generator) -> float:
    """Steps per second of one epoch of a plain PyTorch loop, from step ``warmup`` on."""
    order = torch.randperm(len(labels), generator=generator).to(labels.device)
    batches = [order[i:i + batch] for i in range(0, len(order), batch)]
    start = None
    for step, index in enumerate(batches):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        x, y = to_float(images[index], device), labels[index]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    sync(device)
    return (len(batches) - warmup) / (time.perf_counter() - start)


def main() -> None:
    """Parse the arguments, run both loops alternately and print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--n-train", type=int, default=4096)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=5, help="steps left out at the start of every epoch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(args, Path(tmp) / "run")
        (Path(tmp) / "run").mkdir()
        device = trainer.device
        model = copy.deepcopy(trainer.model).train()
        optimizer = build_optimizer(model.parameters(), trainer.cfg.trainer)
        images, labels = trainer.train.images.to(device), trainer.train.y.to(device)
        generator = torch.Generator().manual_seed(0)
        ours, bare = [], []
        for _ in range(args.repeats):
            ours.append(fairrun_epoch(trainer, args.warmup))
            bare.append(bare_epoch(model, optimizer, images, labels, args.batch, args.warmup, device,
                                   generator))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"{args.model}, {args.size}x{args.size} images, batch {args.batch}, {trainer.steps_per_epoch} "
          f"steps per epoch ({args.warmup} warm-up left out), {args.repeats} repeats, {name}")
    print("loop      median steps/s   all")
    for label, rates in (("fairrun", ours), ("bare", bare)):
        print(f"{label:8s}  {statistics.median(rates):14.1f}   " + " ".join(f"{r:.1f}" for r in rates))
    print(f"ratio fairrun / bare: {statistics.median(ours) / statistics.median(bare):.3f}")


if __name__ == "__main__":
    main()
