"""The shared path of on-disk datasets: splits, value maps, the decoded-image cache, lazy rows, augmentation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fairrun.data.registry import validate_dataset_section
from fairrun.data import cache as cache_module
from fairrun.data.base import LabeledSplit
from fairrun.data.batches import Augmentation, augment, batch_generator, train_batches
from fairrun.data.decode import Preprocessing, crop_box, decode_image
from fairrun.data.files import apply_value_map, assign_splits
from fairrun.data.images import ImageRows
from fairrun.data.registry import load_dataset, read_splits
from fairrun.data.table import ImageTable
from fairrun.core.errors import ConfigError, FairrunError
from tests.conftest import compose_train
from tests.helpers.fixtures_celeba import make_celeba


def celeba_cfg(root, *extra):
    cfg = compose_train(["dataset=celeba", f"dataset.root={root}", "dataset.image_size=16", *extra])
    return validate_dataset_section(cfg.dataset)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("FAIRRUN_CACHE", str(path))
    return path


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory):
    return make_celeba(tmp_path_factory.mktemp("celeba"), n=40, seed=3)


# -- decoding ------------------------------------------------------------------------------------

@pytest.mark.parametrize("crop, crop_size, expected", [
    ("square", None, (0.0, 20.0, 178.0, 198.0)),
    ("center", 178, (0.0, 20.0, 178.0, 198.0)),
    ("center", 100, (39.0, 59.0, 139.0, 159.0)),
    ("none", None, (0.0, 0.0, 178.0, 218.0)),
])
def test_crop_box_policies(crop, crop_size, expected):
    assert crop_box(178, 218, Preprocessing(64, crop, crop_size)) == expected


def test_decode_image_is_rgb_uint8_and_the_fast_jpeg_path_matches_a_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 255, (28, 23, 3)), np.ones((8, 8, 1))).astype(np.uint8)[:218, :178]
    Image.fromarray(smooth).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(smooth[:, :, 0]).save(tmp_path / "gray.png")
    prep = Preprocessing(32, "square")
    fast = decode_image(tmp_path / "a.jpg", prep)  # decoded at 1/4 DCT scale
    with Image.open(tmp_path / "a.jpg") as image:
        full = np.asarray(image.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR,
                                                      box=crop_box(178, 218, prep)))
    assert fast.shape == (3, 32, 32) and fast.dtype == np.uint8
    assert np.abs(fast.transpose(1, 2, 0).astype(int) - full.astype(int)).mean() < 4
    assert decode_image(tmp_path / "gray.png", prep).shape == (3, 32, 32)


# -- splits and value maps -----------------------------------------------------------------------

def _table(n=1000, split=None, seed=0):
    rng = np.random.default_rng(seed)
    attributes = pd.DataFrame({"y": rng.integers(0, 2, n), "g": (rng.random(n) < 0.2).astype(np.int64),
                               "race": rng.integers(0, 4, n)})
    return ImageTable(root=".", paths=[f"{i}.jpg" for i in range(n)], attributes=attributes,
                      attribute_values={"y": ["no", "yes"], "g": ["A", "B"],
                                        "race": ["White", "East Asian", "Southeast Asian", "Black"]},
                      split=split, source="test table")


class _Cfg:
    name, target, protected = "t", "y", "g"
    val_fraction, test_fraction, split_seed = 0.1, 0.2, 0


def test_carved_splits_are_seeded_and_stratified_by_target_and_group():
    table = _table()
    split = assign_splits(table, _Cfg())
    assert np.array_equal(split, assign_splits(table, _Cfg()))
    other = _Cfg()
    other.split_seed = 1
    assert not np.array_equal(split, assign_splits(table, other))
    assert (split == "test").mean() == pytest.approx(0.2, abs=0.01)
    assert (split == "val").mean() == pytest.approx(0.1, abs=0.01)
    for (y, g), cell in table.attributes.groupby(["y", "g"]):
        share = (split[cell.index] == "test").mean()
        assert share == pytest.approx(0.2, abs=1.5 / len(cell)), (y, g)


def test_only_missing_splits_are_carved_from_train():
    n = 1000
    official = np.array(["train"] * 700 + ["test"] * 300, dtype=object)  # FairFace: val csv became test
    split = assign_splits(_table(n, official), _Cfg())
    assert (split[700:] == "test").all()
    assert (split[:700] == "val").sum() == pytest.approx(70, abs=3)
    assert (split[:700] == "test").sum() == 0


def test_value_map_renames_and_merges_values():
    table = _table()
    mapped = apply_value_map(table, {"race": {"East Asian": "Asian", "Southeast Asian": "Asian"}})
    assert mapped.attribute_values["race"] == ["White", "Asian", "Black"]
    old = table.attributes["race"].to_numpy()
    new = mapped.attributes["race"].to_numpy()
    assert np.array_equal(new == 1, (old == 1) | (old == 2)) and np.array_equal(new == 2, old == 3)
    with pytest.raises(ConfigError, match="'Latino'"):
        apply_value_map(table, {"race": {"Latino": "Other"}})
    with pytest.raises(ConfigError, match="ethnicity"):
        apply_value_map(table, {"ethnicity": {"a": "b"}})


# -- the decoded-image cache ---------------------------------------------------------------------

def test_cache_is_built_once_then_reused_and_keyed_by_preprocessing(celeba_root, fresh_cache, monkeypatch):
    splits = read_splits(celeba_cfg(celeba_root), workers=1)
    entries = list(fresh_cache.iterdir())
    assert len(entries) == 1 and (entries[0] / "images.npy").is_file() and (entries[0] / "index.csv").is_file()
    labels = pd.read_csv(entries[0] / "index.csv")
    assert len(labels) == 40 and labels["ok"].all() and "Smiling" in labels.columns

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache was decoded again")

    monkeypatch.setattr(cache_module, "build_cache", no_rebuild)
    again = read_splits(celeba_cfg(celeba_root, "dataset.target=Young", "dataset.protected=Male"), workers=1)
    assert torch.equal(again["test"].images[torch.arange(3)], splits["test"].images[torch.arange(3)])
    monkeypatch.undo()
    monkeypatch.setenv("FAIRRUN_CACHE", str(fresh_cache))
    read_splits(celeba_cfg(celeba_root, "dataset.image_size=24"), workers=1)
    assert len(list(fresh_cache.iterdir())) == 2


def test_cached_rows_equal_decoding_the_file(celeba_root, fresh_cache):
    splits = read_splits(celeba_cfg(celeba_root), workers=1)
    train = splits["train"]
    assert isinstance(train.images, ImageRows) and train.images.shape[1:] == (3, 16, 16)
    first = decode_image(celeba_root / "img_align_celeba" / "000001.jpg", Preprocessing(16, "center", 178))
    assert np.array_equal(train.images[torch.tensor([0])][0].numpy(), first)
    sizes = [len(splits[name].attributes) for name in ("train", "val", "test")]
    assert sizes == [24, 8, 8]  # the fixture's contiguous 60/20/20 partition


def test_parallel_decoding_gives_the_same_array(celeba_root, tmp_path, monkeypatch):
    arrays = []
    for workers in (1, 2):
        monkeypatch.setenv("FAIRRUN_CACHE", str(tmp_path / f"w{workers}"))
        rows = read_splits(celeba_cfg(celeba_root), workers=workers)["train"].images
        arrays.append(rows.materialize())
    assert torch.equal(*arrays)


def test_a_parallel_build_leaves_no_pool_process_or_thread_behind(celeba_root, tmp_path, monkeypatch):
    # the first training epoch runs in the process that built the cache: the decoding pool's worker
    # processes and its handler threads must all be gone by then (small chunks, so the pool is used)
    import multiprocessing
    import threading

    monkeypatch.setattr(cache_module, "CHUNK", 8)
    pool_threads = ("_handle_workers", "_handle_tasks", "_handle_results")
    children = set(multiprocessing.active_children())
    monkeypatch.setenv("FAIRRUN_CACHE", str(tmp_path / "w2"))
    parallel = read_splits(celeba_cfg(celeba_root), workers=2)["train"].images.materialize()
    assert set(multiprocessing.active_children()) == children
    assert not [t.name for t in threading.enumerate() if any(h in t.name for h in pool_threads)]
    monkeypatch.setenv("FAIRRUN_CACHE", str(tmp_path / "w1"))
    serial = read_splits(celeba_cfg(celeba_root), workers=1)["train"].images.materialize()
    assert torch.equal(parallel, serial)


def test_corrupt_image_is_named_and_skip_bad_skips_it_without_decoding_again(tmp_path, fresh_cache, monkeypatch):
    root = make_celeba(tmp_path / "celeba", n=30, seed=1)
    (root / "img_align_celeba" / "000002.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(FairrunError) as err:
        load_dataset(celeba_cfg(root), workers=1)
    message = str(err.value)
    assert "000002.jpg" in message and "dataset.skip_bad=true" in message and "1 of 30" in message
    monkeypatch.setattr(cache_module, "build_cache", lambda *a, **k: pytest.fail("decoded again"))
    splits = load_dataset(celeba_cfg(root, "dataset.skip_bad=true"), workers=1)
    assert sum(len(s) for s in splits.values()) == 29


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(FairrunError, match="dataset.root"):
        load_dataset(celeba_cfg(tmp_path / "nowhere"))


# -- lazy rows, batches and augmentation ---------------------------------------------------------

def test_image_rows_read_only_the_rows_asked_for_in_the_order_asked():
    base = torch.arange(10 * 3 * 2 * 2, dtype=torch.uint8).reshape(10, 3, 2, 2)
    rows = ImageRows(base, torch.tensor([7, 2, 5]))
    assert rows.shape == (3, 3, 2, 2) and len(rows) == 3
    assert torch.equal(rows[torch.tensor([2, 0])], base[torch.tensor([5, 7])])
    assert torch.equal(rows[1:3], base[torch.tensor([2, 5])])
    assert torch.equal(rows.materialize(), base[torch.tensor([7, 2, 5])])
    split = LabeledSplit("train", rows, torch.tensor([0, 1, 0]), torch.tensor([1, 0, 0]), ["A", "B"], ["n", "y"])
    sub = split.subset(torch.tensor([2, 1]))
    assert isinstance(sub.images, torch.Tensor) and torch.equal(sub.images, base[torch.tensor([5, 2])])


def test_augmentation_flips_and_crops_reproducibly():
    x = torch.randn(64, 3, 8, 8)
    aug = Augmentation(hflip=True, random_crop=2)
    a = augment(x, aug, batch_generator(0, 1, 2))
    b = augment(x, aug, batch_generator(0, 1, 2))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(a, augment(x, aug, batch_generator(0, 1, 3)))
    flipped = augment(x, Augmentation(hflip=True), batch_generator(0, 0, 0))
    same = [torch.equal(flipped[i], x[i]) for i in range(64)]
    mirrored = [torch.equal(flipped[i], x[i].flip(2)) for i in range(64)]
    assert all(s or m for s, m in zip(same, mirrored)) and 10 < sum(mirrored) < 54
    cropped = augment(x, Augmentation(random_crop=2), batch_generator(0, 0, 0))
    # every crop is an 8x8 window of the reflect-padded image
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(8):
        assert any(torch.equal(cropped[i], padded[i, :, r:r + 8, c:c + 8]) for r in range(5) for c in range(5))
    assert torch.equal(augment(x, Augmentation(), batch_generator(0, 0, 0)), x)


def test_train_batches_apply_augmentation_the_same_way_after_a_resume():
    images = torch.randint(0, 255, (50, 3, 8, 8), dtype=torch.uint8)
    split = LabeledSplit("train", images, torch.zeros(50, dtype=torch.long), torch.zeros(50, dtype=torch.long),
                         ["A"], ["n", "y"])
    order = torch.randperm(50)
    aug = Augmentation(hflip=True, random_crop=1)
    full = list(train_batches(split, order, 16, torch.device("cpu"), aug=aug, seed=3, epoch=2))
    resumed = list(train_batches(split, order, 16, torch.device("cpu"), start_step=2, aug=aug, seed=3, epoch=2))
    assert torch.equal(full[2].x, resumed[0].x) and torch.equal(full[3].x, resumed[1].x)
