"""`fairrun prepare`: build a dataset's decoded-image cache ahead of training."""
from __future__ import annotations

import logging

from fairrun.data.cache import cache_root
from fairrun.data.registry import DATASETS, read_splits

log = logging.getLogger("fairrun")


def run_prepare(dataset_cfg, workers: int = 0) -> dict[str, int]:
    """Decode every image of the dataset once (or find the cache) and print split sizes.

    Returns the number of usable images per split. In-memory datasets (synthetic) need no cache.
    """
    if DATASETS[dataset_cfg.name].read_table is None:
        print(f"dataset={dataset_cfg.name} is generated in memory; there is nothing to prepare.")
        return {}
    splits = read_splits(dataset_cfg, workers)
    sizes = {name: len(split.attributes) for name, split in splits.items()}
    print(f"{dataset_cfg.name}: {sum(sizes.values())} usable images at {dataset_cfg.image_size}px "
          f"({', '.join(f'{k} {v}' for k, v in sizes.items())}), decoded once into the cache under "
          f"{cache_root()} (set FAIRRUN_CACHE to move it).")
    return sizes
