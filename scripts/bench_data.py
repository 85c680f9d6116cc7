"""Benchmark: images/s fed to the model from the decoded-image cache vs. decoding JPEGs every epoch.

Generates (once) a CelebA-layout folder of ``--n`` 178x218 JPEGs with the official annotation files,
then for each ``--sizes`` measures, in the same run:

* baseline: the usual per-epoch path, a torch DataLoader over a Dataset that opens each JPEG with
  PIL, centre-crops 178, resizes and converts to a normalised float tensor, with ``--workers``
  worker processes (the median of ``--epochs`` epochs; each epoch starts its workers afresh);
* fairrun, steady state (the number a training run lives in): a fresh process opens the built
  cache as a later ``fairrun train`` does, reads the training split into RAM, runs one warm-up
  epoch of ``fairrun.data.batches.train_batches`` (uint8 rows -> float in [-1, 1] -> random flip),
  then times ``--epochs`` epochs; the median is reported;
* fairrun, first epoch after the build: the cache built by fairrun's parallel decoder (same number
  of processes as the baseline; its one-off build rate is reported too), then one epoch timed at
  once in the same process, as the first epoch of a ``fairrun train`` that had to build the cache.

Both sides yield identical-shape float batches on the CPU, the cache side with torch's default
intra-op threads (``--torch-threads`` to change); the speed-up is fairrun / baseline images per
second. Usage: ``python scripts/bench_data.py --n 20000 --sizes 64 128 --workers 2``.

On a machine whose cores are shared with other jobs, expect the cache numbers to swing between runs
(a CPU epoch of 20,000 images at 64 px lasts a fraction of a second, and torch's intra-op threads
wait on each other whenever one of them loses its core): compare ratios from one run, and repeat;
``--torch-threads 1`` shows the cache side without that wait.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CELEBA_ATTRS = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
                "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
                "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
                "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
                "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie "
                "Young").split()


def face_like(rng: np.random.Generator) -> np.ndarray:
    """A 218x178 RGB picture with smooth shading, an ellipse and mild noise (JPEG size like CelebA's)."""
    yy, xx = np.mgrid[0:218, 0:178].astype(np.float32)
    background = rng.uniform(40, 220, 3) + (yy[..., None] / 218) * rng.uniform(-60, 60, 3)
    cy, cx, ry, rx = rng.uniform(95, 125), rng.uniform(75, 105), rng.uniform(55, 75), rng.uniform(40, 55)
    face = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    image = np.where(face[..., None], rng.uniform(120, 240, 3), background)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_celeba_folder(root: Path, n: int, seed: int = 0) -> Path:
    """Write n JPEGs and list_attr_celeba.txt / list_eval_partition.txt (all images in train)."""
    image_dir = root / "img_align_celeba"
    if (root / "list_eval_partition.txt").is_file() and len(os.listdir(image_dir)) >= n:
        return root
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bases = [face_like(rng) for _ in range(64)]
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for i, name in enumerate(names):
        picture = np.roll(bases[i % 64], shift=int(rng.integers(-8, 8)), axis=1)
        Image.fromarray(picture).save(image_dir / name, quality=90)
    values = rng.choice([-1, 1], size=(n, len(CELEBA_ATTRS)))
    lines = [str(n), " ".join(CELEBA_ATTRS) + " "]
    lines += [name + " " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, values)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(f"{name} 0" for name in names) + "\n")
    return root


class DecodeEveryEpoch(torch.utils.data.Dataset):
    """The baseline: PIL decode + centre crop 178 + resize + to float in [-1, 1], per item, every epoch."""

    def __init__(self, image_dir: Path, names: list[str], size: int):
        self.image_dir, self.names, self.size = image_dir, names, size

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int):
        with Image.open(self.image_dir / self.names[i]) as image:
            image = image.convert("RGB")
            width, height = image.size
            left, top = (width - 178) // 2, (height - 178) // 2
            image = image.crop((left, top, left + 178, top + 178)).resize((self.size, self.size),
                                                                          Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
        if torch.rand(()) < 0.5:
            x = x.flip(2)
        return x, 0


def time_baseline(root: Path, n: int, size: int, workers: int, batch_size: int, epochs: int) -> list[float]:
    """Images/s of each of ``epochs`` epochs through a DataLoader that decodes every JPEG."""
    names = sorted(os.listdir(root / "img_align_celeba"))[:n]
    loader = torch.utils.data.DataLoader(DecodeEveryEpoch(root / "img_align_celeba", names, size),
                                         batch_size=batch_size, shuffle=True, num_workers=workers,
                                         persistent_workers=False)
    rates = []
    for _ in range(epochs):
        seen, started = 0, time.perf_counter()
        for x, _ in loader:
            seen += len(x)
        rates.append(seen / (time.perf_counter() - started))
    return rates


def dataset_config(root: Path, size: int):
    from fairrun.data.registry import validate_dataset_section

    return validate_dataset_section({"name": "celeba", "root": str(root), "image_size": size,
                                     "target": "Smiling", "protected": "Male", "crop": "center",
                                     "crop_size": 178})


def time_epochs(train, batch_size: int, epochs: range) -> list[float]:
    """Images/s of each epoch in ``epochs`` of fairrun's CPU training batches (flip augmentation)."""
    from fairrun.data.batches import Augmentation, epoch_order, train_batches

    device, aug, rates = torch.device("cpu"), Augmentation(hflip=True), []
    for epoch in epochs:
        started, seen = time.perf_counter(), 0
        for batch in train_batches(train, epoch_order(train, 0, epoch), batch_size, device, aug=aug,
                                   epoch=epoch):
            seen += len(batch.y)
        rates.append(seen / (time.perf_counter() - started))
    return rates


def time_cache_build(root: Path, size: int, workers: int, batch_size: int) -> tuple[float, float]:
    """(images/s of building the cache once, images/s of the first epoch right after, same process)."""
    from fairrun.data.batches import load_into_memory
    from fairrun.data.registry import load_dataset

    started = time.perf_counter()
    train = load_dataset(dataset_config(root, size), workers=workers)["train"]
    build = len(train) / (time.perf_counter() - started)
    train = load_into_memory(train)  # as fairrun train does: the cached rows read into RAM once
    return build, time_epochs(train, batch_size, range(1))[0]


def time_cache_reopened(root: Path, size: int, batch_size: int, epochs: int) -> list[float]:
    """Images/s of ``epochs`` epochs after a warm-up epoch, in this (fresh) process opening the cache."""
    from fairrun.data.batches import load_into_memory
    from fairrun.data.registry import load_dataset

    train = load_into_memory(load_dataset(dataset_config(root, size))["train"])
    return time_epochs(train, batch_size, range(1 + epochs))[1:]


def steady_state(root: Path, size: int, batch_size: int, epochs: int) -> list[float]:
    """:func:`time_cache_reopened` in a new Python process (``$FAIRRUN_CACHE`` is inherited)."""
    out = subprocess.run([sys.executable, __file__, "--reopen", str(size), "--root", str(root),
                          "--batch-size", str(batch_size), "--epochs", str(epochs),
                          "--torch-threads", str(torch.get_num_threads())],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3,
                        help="timed epochs per measurement (the median is reported)")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch intra-op threads of the cache side (default 0: torch's default)")
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "fairrun-bench-celeba")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--reopen", type=int, default=None, help=argparse.SUPPRESS)  # internal: steady state
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.reopen is not None:
        print(json.dumps(time_cache_reopened(args.root, args.reopen, args.batch_size, args.epochs)))
        return
    cache = tempfile.mkdtemp(prefix="fairrun-bench-cache-")  # a fresh cache, so the build is timed
    os.environ["FAIRRUN_CACHE"] = cache
    started = time.perf_counter()
    make_celeba_folder(args.root, args.n)
    print(f"{args.n} JPEGs in CelebA layout at {args.root} ({time.perf_counter() - started:.0f} s); "
          f"torch intra-op threads: {torch.get_num_threads()}, medians of {args.epochs} epochs")
    results = []
    try:
        for size in args.sizes:
            build, first = time_cache_build(args.root, size, args.workers, args.batch_size)
            steady = steady_state(args.root, size, args.batch_size, args.epochs)
            baseline = time_baseline(args.root, args.n, size, args.workers, args.batch_size, args.epochs)
            cached, decoded = statistics.median(steady), statistics.median(baseline)
            row = {"size": size, "images": args.n, "workers": args.workers,
                   "torch_threads": torch.get_num_threads(), "baseline_img_s": round(decoded),
                   "cache_img_s": round(cached), "speedup": round(cached / decoded, 1),
                   "cache_first_epoch_after_build_img_s": round(first),
                   "first_epoch_speedup": round(first / decoded, 1), "cache_build_img_s": round(build),
                   "baseline_epochs_img_s": [round(r) for r in baseline],
                   "cache_epochs_img_s": [round(r) for r in steady]}
            results.append(row)
            print(f"{size:4d}px  decode-every-epoch DataLoader ({args.workers} workers): "
                  f"{decoded:6.0f} img/s  "
                  f"fairrun cache, steady: {cached:7.0f} img/s ({cached / decoded:.1f}x)   "
                  f"first epoch after the build: {first:7.0f} img/s ({first / decoded:.1f}x)   "
                  f"one-off build: {build:.0f} img/s", flush=True)
            print(f"      per epoch: baseline {row['baseline_epochs_img_s']}, "
                  f"cache (after a warm-up epoch) {row['cache_epochs_img_s']}", flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
