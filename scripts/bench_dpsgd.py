"""Step time of DP-SGD against ERM, per Opacus grad_sample_mode, measured in one run.

Every variant trains the same batches through fairrun's own method code (``Method.wrap``, ``forward``,
``loss``, backward, optimizer step); the baseline is ERM on the unmodified model (BatchNorm), and
``erm (GroupNorm)`` is ERM on the architecture DP-SGD actually trains, so the table separates the cost of
the architecture change from the cost of per-example clipping. Ratios are against the ERM baseline of the
same model in the same run.

    python scripts/bench_dpsgd.py --models cnn resnet18 --size 32 --batch 64 --steps 5
    python scripts/bench_dpsgd.py --device cuda --size 64 --batch 256 --steps 20   # on a GPU
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import torch

from fairrun.data.base import Batch, LabeledSplit
from fairrun.data.batches import Augmentation
from fairrun.methods import build_method
from fairrun.methods.base import TrainingPlan
from fairrun.methods.dpsgd import DPSGDConfig
from fairrun.methods.erm import ERMConfig
from fairrun.models import MODELS, build_model
from fairrun.methods.privacy import opacus_compatible

warnings.filterwarnings("ignore")
logging.getLogger("fairrun").setLevel(logging.ERROR)


def make_split(n: int, size: int) -> LabeledSplit:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)
    return LabeledSplit(name="train", images=images, y=torch.randint(0, 2, (n,), generator=generator),
                        g=torch.randint(0, 2, (n,), generator=generator), group_names=["A", "B"],
                        class_names=["no", "yes"])


def variant(model_name: str, kind: str, split: LabeledSplit, batch: int, device: torch.device):
    """(model, method, optimizer) for one row of the table."""
    torch.manual_seed(0)
    model = build_model(MODELS[model_name].Config(name=model_name), 3, split.images.shape[-1], 2)
    plan = TrainingPlan(train=split, batch_size=batch, epochs=1, lr=1e-3, seed=0, device=device,
                        augmentation=Augmentation(), model_name=model_name)
    if kind.startswith("erm"):
        method = build_method(ERMConfig(), num_classes=2, num_groups=2)
        if kind == "erm (GroupNorm)":
            model, _ = opacus_compatible(model)
    else:
        mode = kind.split()[-1]
        method = build_method(DPSGDConfig(grad_sample_mode=mode), num_classes=2, num_groups=2)
        model = method.adapt_model(model)
    model = model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model, optimizer = method.wrap(model, optimizer, plan)
    return model, method, optimizer


def step_seconds(model, method, optimizer, x, y, g, steps: int, warmup: int, device) -> float:
    batch = Batch(x=x, y=y, g=g, index=torch.arange(len(y), device=device))
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = method.loss(method.forward(model, x), batch)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["cnn", "resnet18"])
    parser.add_argument("--modes", nargs="+", default=["hooks", "ghost", "functorch"])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    split = make_split(args.batch * 4, args.size)
    x = (split.images[:args.batch].float() / 127.5 - 1).to(device)
    y, g = split.y[:args.batch].to(device), split.g[:args.batch].to(device)
    print(f"device {device} ({torch.get_num_threads()} threads), {args.size} px, batch {args.batch}, "
          f"median of {args.steps} steps after {args.warmup} warm-up")
    print("| model | variant | ms/step | × ERM |\n|---|---|---|---|")
    for model_name in args.models:
        baseline = None
        for kind in ["erm", "erm (GroupNorm)", *[f"dpsgd {m}" for m in args.modes]]:
            model, method, optimizer = variant(model_name, kind, split, args.batch, device)
            try:
                seconds = step_seconds(model, method, optimizer, x, y, g, args.steps, args.warmup, device)
            except Exception as err:  # a mode Opacus cannot run for this model: report it, go on
                print(f"| {model_name} | {kind} | failed: {type(err).__name__}: {str(err)[:80]} | |")
                continue
            baseline = baseline or seconds
            print(f"| {model_name} | {kind} | {seconds * 1000:.1f} | {seconds / baseline:.2f} |", flush=True)


if __name__ == "__main__":
    main()
