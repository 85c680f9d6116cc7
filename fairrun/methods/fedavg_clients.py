"""The clients of dp_fedavg's simulated federation: their rows and the weights they start from.

Rows: the training set split once into ``num_clients`` parts (:func:`make_partition`).

``partition``: ``iid`` (equal random parts), ``group`` (every client holds one protected group; clients
allotted to groups in proportion to their sizes), ``dirichlet`` (for every class k of ``dirichlet_over``,
``p_k ~ Dir(alpha 1_W)`` and class k's rows are divided among the clients by ``p_k``, as in Hsu, Qi & Brown
2019) or ``identity`` (one client per person of the training rows, CelebA's identity_CelebA.txt: W is the
number of distinct people, ``num_clients`` must be null). Seeded and deterministic: a function of (seed, the
partition's stream tag) only (``identity`` draws nothing).

Weights: the global model's trainable parameters as one flat vector, copied into the client model and back
(:func:`flatten_into`, :func:`unflatten_from`); frozen parameters and buffers are copied, never averaged.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
import torch
from torch import nn

from fairrun.core.errors import ConfigError

PARTITIONS = ("iid", "group", "dirichlet", "identity")
DIRICHLET_OVER = ("label", "group")
PARTITION_STREAM = 0xFED0  # the partition's random stream (dp_fedavg's other draws use 0xFED1-0xFED4)


# -- client partitions ----------------------------------------------------------------------------

def split_iid(n: int, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random permutation of ``range(n)`` cut into ``num_clients`` parts whose sizes differ by at most 1."""
    return np.array_split(rng.permutation(n), num_clients)


def clients_per_group(counts: np.ndarray, num_clients: int) -> np.ndarray:
    """Clients allotted to each group, in proportion to its size (Sainte-Laguë / Webster), >= 1 per
    non-empty group and 0 for an empty one; raises ConfigError if there are fewer clients than groups."""
    present = counts > 0
    if num_clients < present.sum():
        raise ConfigError(
            f"Invalid value for 'method.num_clients': {num_clients}. With method.partition=group every "
            f"client holds rows of one protected group, so at least one client per non-empty group is "
            f"needed: accepted is an integer >= {int(present.sum())} (the number of non-empty groups).")
    seats = present.astype(np.int64)
    for _ in range(num_clients - int(seats.sum())):
        priority = np.where(present, counts / (seats + 0.5), -1.0)
        seats[int(np.argmax(priority))] += 1
    return seats


def split_by_group(g: np.ndarray, num_groups: int, num_clients: int,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """Single-group clients: each group's rows split iid among its clients (groups in order)."""
    seats = clients_per_group(np.bincount(g, minlength=num_groups), num_clients)
    clients = []
    for group, k in enumerate(seats):
        if k:
            rows = np.flatnonzero(g == group)
            clients += [rows[part] for part in split_iid(len(rows), int(k), rng)]
    return clients


def split_dirichlet(labels: np.ndarray, num_classes: int, num_clients: int, alpha: float,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """Hsu, Qi & Brown (2019): for every class k, p_k ~ Dir(alpha 1_W) and class k's rows (shuffled)
    are cut among the clients in proportions p_k. Clients may end up empty."""
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for k in range(num_classes):
        p = rng.dirichlet(np.full(num_clients, alpha))
        if not np.isfinite(p).all() or p.sum() <= 0:  # underflow at tiny alpha: all mass on one client
            p = np.eye(num_clients)[rng.integers(num_clients)]
        rows = rng.permutation(np.flatnonzero(labels == k))
        cuts = np.round(np.cumsum(p)[:-1] * len(rows)).astype(np.int64)
        for client, chunk in enumerate(np.split(rows, cuts)):
            parts[client].append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def split_by_identity(identity: np.ndarray) -> list[np.ndarray]:
    """One client per distinct identity code, in increasing code order, holding that person's rows in order.

    Raises ConfigError if a row has no identity (code < 0)."""
    if (identity < 0).any():
        raise ConfigError(f"method.partition=identity: {int((identity < 0).sum())} training rows have no "
                          f"identity, so they belong to no client. Use a dataset whose every image is listed "
                          f"in its identity file (CelebA: identity_CelebA.txt).")
    order = np.argsort(identity, kind="stable")
    _, starts = np.unique(identity[order], return_index=True)
    return np.split(order, starts[1:])


def make_partition(y: torch.Tensor, g: torch.Tensor, num_classes: int, num_groups: int, cfg,
                   seed: int, identity: Optional[torch.Tensor] = None) -> list[torch.Tensor]:
    """The clients' row indices (int64 tensors on the CPU) for ``cfg.partition``; seeded, deterministic.

    ``identity``: each row's person (int64 codes), needed by ``partition=identity`` only (one client per
    person: :func:`split_by_identity`; the number of clients is then the number of distinct people)."""
    rng = np.random.default_rng([seed, PARTITION_STREAM])
    y, g = y.cpu().numpy(), g.cpu().numpy()
    if cfg.partition == "identity":
        if identity is None:
            raise ConfigError("method.partition=identity needs each training row's person, and this training "
                              "split has none. Datasets with identities: celeba (identity_CelebA.txt beside "
                              "list_attr_celeba.txt).")
        clients = split_by_identity(identity.cpu().numpy())
    elif cfg.partition == "iid":
        clients = split_iid(len(y), cfg.num_clients, rng)
    elif cfg.partition == "group":
        clients = split_by_group(g, num_groups, cfg.num_clients, rng)
    else:
        labels, k = (y, num_classes) if cfg.dirichlet_over == "label" else (g, num_groups)
        clients = split_dirichlet(labels, k, cfg.num_clients, cfg.alpha, rng)
    return [torch.as_tensor(np.asarray(c, dtype=np.int64)) for c in clients]


def partition_table(clients: list[torch.Tensor], g: torch.Tensor, group_names: list[str]) -> pd.DataFrame:
    """Rows per client (min / median / max, clients holding any) in total and per protected group."""
    g = g.cpu()
    counts = np.stack([torch.bincount(g[c], minlength=len(group_names)).numpy() for c in clients])
    table = {"all rows": counts.sum(axis=1)}
    table.update({f"group {name}": counts[:, j] for j, name in enumerate(group_names)})
    return pd.DataFrame({name: {"min": int(v.min()), "median": float(np.median(v)), "max": int(v.max()),
                                "clients holding": int((v > 0).sum())} for name, v in table.items()}).T


# -- flat parameter vectors, seeds -------------------------------------------------------------------

def flatten_into(tensors: list[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    """Copy ``tensors`` (any memory format) into the flat vector ``out`` in logical order."""
    offset = 0
    for t in tensors:
        n = t.numel()
        out[offset:offset + n].copy_(t.detach().reshape(-1))
        offset += n
    return out


def unflatten_from(vec: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    """Copy the flat vector ``vec`` into ``tensors`` in place (inverse of :func:`flatten_into`)."""
    offset = 0
    with torch.no_grad():
        for t in tensors:
            n = t.numel()
            t.copy_(vec[offset:offset + n].view(t.shape))
            offset += n


def untrained(model: nn.Module) -> list[torch.Tensor]:
    """Frozen parameters and buffers: copied from the global model to the client model, never averaged."""
    return [p for p in model.parameters() if not p.requires_grad] + list(model.buffers())


def seed_of(*parts: int) -> int:
    """A 63-bit seed derived from integers (numpy SeedSequence: no collisions between nearby tuples)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> np.uint64(1))
