"""CelebA reader: both layouts, attribute coding, subsets, missing files and images, validation."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from fairrun.data import celeba as celeba_module
from fairrun.data.cache import cache_key
from fairrun.data.celeba import CELEBA_ATTRIBUTES, CelebAConfig, read_table, validate
from fairrun.data.decode import Preprocessing
from fairrun.core.errors import ConfigError, FairrunError
from tests.conftest import TINY_CNN, run_fairrun, compose_train
from tests.helpers.fixtures_celeba import make_celeba, make_torchvision_celeba

# The first row of the real list_attr_celeba.txt.
FIRST_ROW = ("000001.jpg -1  1  1 -1 -1 -1 -1 -1 -1 -1 -1  1 -1 -1 -1 -1 -1 -1  1  1 -1  1 -1 -1  1 -1 -1  "
             "1 -1 -1 -1  1  1 -1  1 -1  1 -1 -1  1")
FIRST_ROW_POSITIVE = {"Arched_Eyebrows", "Attractive", "Brown_Hair", "Heavy_Makeup", "High_Cheekbones",
                      "Mouth_Slightly_Open", "No_Beard", "Pointy_Nose", "Smiling", "Straight_Hair",
                      "Wearing_Earrings", "Wearing_Lipstick", "Young"}


def read(root: Path, **keys):
    return read_table(CelebAConfig(root=str(root), **keys))


def test_official_layout_rows_attributes_and_splits(tmp_path):
    table = read(make_celeba(tmp_path, n=60))
    assert table.source == "CelebA (official layout)"
    assert table.root == tmp_path.resolve()
    assert len(table) == 60 and table.skipped == {}
    assert table.paths[0] == "img_align_celeba/000001.jpg"
    assert all((table.root / p).is_file() for p in table.paths)
    assert list(table.attributes.columns) == [*CELEBA_ATTRIBUTES, "gender", "identity"]
    assert isinstance(table.attributes.index, pd.RangeIndex)
    assert all(dtype == np.int64 for dtype in table.attributes.dtypes)
    assert table.attributes.drop(columns="identity").isin([0, 1]).all().all()
    assert (table.attributes["gender"] == table.attributes["Male"]).all()
    assert list(table.split) == ["train"] * 36 + ["val"] * 12 + ["test"] * 12
    for split in ("train", "val", "test"):
        rows = table.attributes[table.split == split]
        assert set(rows["Smiling"]) == {0, 1} and set(rows["Male"]) == {0, 1}


def test_attribute_value_names(tmp_path):
    values = read(make_celeba(tmp_path, n=20, identities=False)).attribute_values
    assert values["Male"] == ["Female", "Male"]
    assert values["gender"] == ["Female", "Male"]
    assert values["Smiling"] == ["not_Smiling", "Smiling"]
    assert values["5_o_Clock_Shadow"] == ["not_5_o_Clock_Shadow", "5_o_Clock_Shadow"]
    assert len(values) == 41


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_real_first_row_is_coded_exactly(tmp_path, newline):
    (tmp_path / "img_align_celeba").mkdir()
    (tmp_path / "img_align_celeba" / "000001.jpg").touch()
    lines = ["1", " ".join(CELEBA_ATTRIBUTES) + " ", FIRST_ROW]
    (tmp_path / "list_attr_celeba.txt").write_bytes((newline.join(lines) + newline).encode())
    (tmp_path / "list_eval_partition.txt").write_bytes(f"000001.jpg 2{newline}".encode())
    table = read(tmp_path)
    row = table.attributes.iloc[0]
    assert {name for name in CELEBA_ATTRIBUTES if row[name] == 1} == FIRST_ROW_POSITIVE
    assert row["gender"] == 0 and list(table.split) == ["test"]


def test_kaggle_layout_parses_like_the_official_one(tmp_path):
    official = read(make_celeba(tmp_path / "official", n=40, seed=3, identities=False))
    kaggle = read(make_celeba(tmp_path / "kaggle", n=40, layout="kaggle", seed=3))
    assert kaggle.source == "CelebA (Kaggle layout)"
    assert kaggle.paths[0] == "img_align_celeba/img_align_celeba/000001.jpg"
    assert all((kaggle.root / p).is_file() for p in kaggle.paths)
    pd.testing.assert_frame_equal(official.attributes, kaggle.attributes)
    assert list(official.split) == list(kaggle.split)
    assert [Path(p).name for p in official.paths] == [Path(p).name for p in kaggle.paths]
    assert official.attribute_values == kaggle.attribute_values


def test_official_layout_preferred_and_layout_key(tmp_path):
    make_celeba(tmp_path, n=20, layout="kaggle", seed=1)
    make_celeba(tmp_path, n=30, layout="official", seed=2)
    assert read(tmp_path).source == "CelebA (official layout)"
    assert len(read(tmp_path)) == 30
    assert read(tmp_path, layout="kaggle").source == "CelebA (Kaggle layout)"
    (tmp_path / "list_eval_partition.txt").unlink()  # official layout incomplete: auto falls back
    assert len(read(tmp_path)) == 20
    with pytest.raises(FairrunError, match="Found only: list_attr_celeba.txt, img_align_celeba/"):
        read(tmp_path, layout="official")


def test_subset_trusts_rows_and_intersects_annotation_files(tmp_path, caplog):
    root = make_celeba(tmp_path, n=60)
    attr = (root / "list_attr_celeba.txt").read_text().splitlines()
    # count line of the full dataset, first 10 images dropped from the attribute file
    (root / "list_attr_celeba.txt").write_text("\n".join(["202599", attr[1], *attr[12:]]) + "\n")
    partition = (root / "list_eval_partition.txt").read_text().splitlines()
    (root / "list_eval_partition.txt").write_text("\n".join(partition[:-5]) + "\n")  # last 5 dropped
    with caplog.at_level(logging.WARNING, logger="fairrun.data.celeba"):
        table = read(root)
    assert "202599" in caplog.text and "50 rows" in caplog.text
    assert len(table) == 45
    assert table.paths[0] == "img_align_celeba/000011.jpg"
    assert table.paths[-1] == "img_align_celeba/000055.jpg"
    assert table.skipped == {"missing from the partition file": 5, "missing from the attribute file": 10}
    assert list(table.split) == ["train"] * 26 + ["val"] * 12 + ["test"] * 7


def test_missing_files_error_lists_what_was_looked_for_and_where_to_get_it(tmp_path):
    with pytest.raises(FairrunError) as err:
        read(tmp_path)
    message = str(err.value)
    for entry in ("list_attr_celeba.txt", "list_eval_partition.txt", "list_attr_celeba.csv",
                  "list_eval_partition.csv", "img_align_celeba", "img_align_celeba/img_align_celeba"):
        assert str(tmp_path.resolve() / entry) in message
    assert "mmlab.ie.cuhk.edu.hk/projects/CelebA.html" in message
    assert "jessicali9530/celeba-dataset" in message
    assert "never downloads" in message and "None of them exists" in message
    assert str(tmp_path.resolve() / "celeba") in message and "torchvision's layout" in message
    assert "A CelebA copy is in" not in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []  # nothing downloaded


# -- torchvision's layout (ROOT/celeba/...) and copies elsewhere below dataset.root ----------------

@pytest.mark.parametrize("layout", ["official", "kaggle"])
def test_torchvision_layout_is_read_from_root_and_logged(tmp_path, caplog, layout):
    root = make_torchvision_celeba(tmp_path / "data", n=30, layout=layout, seed=3)
    with caplog.at_level(logging.INFO, logger="fairrun.data.celeba"):
        table = read(root)
    folder = (root / "celeba").resolve()
    assert table.root == folder and table.source == celeba_module.SOURCES[layout]
    expected = f"in {folder} (the celeba/ sub-folder of dataset.root={root.resolve()}, torchvision's"
    assert expected in caplog.text
    assert len(table) == 30 and all((table.root / p).is_file() for p in table.paths)
    direct = read(root / "celeba")  # the same copy, dataset.root pointing at the folder itself
    assert direct.root == folder and direct.paths == table.paths
    pd.testing.assert_frame_equal(direct.attributes, table.attributes)
    assert list(direct.split) == list(table.split)


def test_torchvision_official_files_match_the_published_formats(tmp_path):
    folder = make_torchvision_celeba(tmp_path, n=20) / "celeba"
    assert sorted(p.name for p in folder.iterdir()) == [
        "identity_CelebA.txt", "img_align_celeba", "list_attr_celeba.txt", "list_bbox_celeba.txt",
        "list_eval_partition.txt", "list_landmarks_align_celeba.txt"]
    bbox = (folder / "list_bbox_celeba.txt").read_text().splitlines()
    assert bbox[:2] == ["20", "image_id x_1 y_1 width height"] and len(bbox[2].split()) == 5
    marks = (folder / "list_landmarks_align_celeba.txt").read_text().splitlines()
    assert marks[0] == "20" and len(marks[1].split()) == 10 and len(marks[2].split()) == 11
    assert (folder / "identity_CelebA.txt").read_text().splitlines()[0].split()[0] == "000001.jpg"


def test_root_itself_wins_over_its_celeba_subfolder(tmp_path, caplog):
    make_torchvision_celeba(tmp_path, n=20, seed=1)
    make_celeba(tmp_path, n=30, seed=2)
    with caplog.at_level(logging.INFO, logger="fairrun.data.celeba"):
        table = read(tmp_path)
    assert table.root == tmp_path.resolve() and len(table) == 30
    assert f"official layout in dataset.root={tmp_path.resolve()}" in caplog.text
    # an incomplete copy in root falls through to celeba/ (auto), not to a half-read root
    (tmp_path / "list_eval_partition.txt").unlink()
    assert read(tmp_path).root == (tmp_path / "celeba").resolve()


def test_cache_key_follows_the_folder_actually_read(tmp_path):
    prep = Preprocessing(16, "center", 178)
    via_parent = read(make_torchvision_celeba(tmp_path / "a", n=20, seed=4))
    direct = read(tmp_path / "a" / "celeba")
    other = read(make_torchvision_celeba(tmp_path / "b", n=20, seed=4))  # same files, another folder
    assert cache_key("celeba", via_parent, prep) == cache_key("celeba", direct, prep)
    assert via_parent.paths == other.paths
    assert cache_key("celeba", via_parent, prep) != cache_key("celeba", other, prep)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "celeba").symlink_to(tmp_path / "b" / "celeba")  # c/celeba/ is a link to b's copy
    linked = read(tmp_path / "c")
    assert linked.root == other.root
    assert cache_key("celeba", linked, prep) == cache_key("celeba", other, prep)


def test_read_splits_decodes_the_torchvision_layout(tmp_path, monkeypatch):
    from fairrun.data.registry import validate_dataset_section
    from fairrun.data.registry import read_splits
    from tests.conftest import compose_train

    monkeypatch.setenv("FAIRRUN_CACHE", str(tmp_path / "cache"))
    root = make_torchvision_celeba(tmp_path / "data", n=40, seed=5)
    cfg = validate_dataset_section(compose_train(["dataset=celeba", f"dataset.root={root}",
                                                  "dataset.image_size=16"]).dataset)
    splits = read_splits(cfg, workers=1)
    assert [len(splits[s].attributes) for s in ("train", "val", "test")] == [24, 8, 8]
    assert tuple(splits["train"].images[0].shape) == (3, 16, 16)
    meta = next((tmp_path / "cache").glob("celeba-16px-*/meta.json")).read_text()
    assert str((root / "celeba").resolve()) in meta


@pytest.mark.parametrize("layout", ["official", "kaggle"])
@pytest.mark.parametrize("levels", [1, 2])
def test_missing_files_error_names_the_copy_below_root(tmp_path, layout, levels):
    parent = tmp_path / "projects" / "faces"  # torchvision's root: the copy is in faces/celeba/
    make_torchvision_celeba(parent, n=20, layout=layout)
    root = parent.parents[levels - 1]  # projects/ (copy 2 levels below) or tmp_path (3 levels below)
    (root / "unrelated" / "deeper").mkdir(parents=True)
    with pytest.raises(FairrunError) as err:
        read(root)
    message = str(err.value)
    copy = (parent / "celeba").resolve()
    kind = "official" if layout == "official" else "Kaggle"
    assert f"None of them exists. A CelebA copy is in {copy} ({kind} layout): pass dataset.root={copy}." \
        in message
    assert f"dataset.root={root.resolve()}" in message and "\n" not in message


def test_missing_files_error_names_the_copy_above_root_and_a_layout_mismatch(tmp_path):
    root = make_torchvision_celeba(tmp_path, n=20)
    with pytest.raises(FairrunError, match=r"A CelebA copy is in .*celeba \(official layout\): pass"):
        read(root / "celeba" / "img_align_celeba")  # pointed into the image folder
    kaggle = make_celeba(tmp_path / "kaggle", n=20, layout="kaggle")
    with pytest.raises(FairrunError) as err:
        read(kaggle, layout="official")
    assert "(Kaggle layout): pass dataset.layout=kaggle (or auto)." in str(err.value)
    assert len(read(kaggle)) == 20


def test_copy_search_is_bounded(tmp_path, monkeypatch):
    listed = []
    real = celeba_module.bounded_listing
    monkeypatch.setattr(celeba_module, "bounded_listing", lambda path: listed.append(path) or real(path))
    make_torchvision_celeba(tmp_path / "a" / "b" / "c" / "d", n=20)  # the copy is 5 levels below
    for i in range(300):
        (tmp_path / "many" / f"f{i:03d}").mkdir(parents=True)
    with pytest.raises(FairrunError) as err:
        read(tmp_path)
    assert "A CelebA copy is in" not in str(err.value)  # beyond SEARCH_DEPTH
    assert len(listed) == celeba_module.SEARCH_MAX_FOLDERS
    listed.clear()
    with pytest.raises(FairrunError, match="A CelebA copy is in"):
        read(tmp_path / "a" / "b")
    assert not any(folder.name == "img_align_celeba" for folder in listed)  # image folders are never listed
    monkeypatch.setattr(celeba_module, "SEARCH_MAX_ENTRIES", 3)
    names, _ = real(tmp_path / "many")
    assert len(names) == 3


def test_cli_train_on_the_torchvision_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRRUN_CACHE", str(tmp_path / "cache"))
    root = make_torchvision_celeba(tmp_path / "data", n=60, seed=0)
    fast = ["dataset.image_size=16", "trainer.epochs=1", "trainer.batch_size=32", "gpu=cpu", *TINY_CNN]
    proc = run_fairrun("train", "dataset=celeba", f"dataset.root={root}", *fast, "hydra.run.dir=run",
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"official layout in {(root / 'celeba').resolve()} (the celeba/ sub-folder" in log
    results = pd.read_pickle(tmp_path / "run" / "results.pkl")
    assert results["split"].tolist()[:2] == ["val", "test"] and results["n"].iloc[1] == 12
    proc = run_fairrun("train", "dataset=celeba", f"dataset.root={tmp_path}", *fast, "hydra.run.dir=bad",
                       cwd=tmp_path)  # two levels above the copy
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    flat = " ".join(proc.stderr.split())
    assert f"pass dataset.root={(root / 'celeba').resolve()}" in flat, proc.stderr[-2000:]


def test_unset_root_is_a_clear_error():
    with pytest.raises(FairrunError, match="dataset.root is not set"):
        read_table(CelebAConfig())


def test_missing_images_error_or_skipped(tmp_path):
    root = make_celeba(tmp_path, n=30)
    for name in ("000004.jpg", "000005.jpg", "000030.jpg"):
        (root / "img_align_celeba" / name).unlink()
    with pytest.raises(FairrunError) as err:
        read(root)
    message = str(err.value)
    assert "3 of 30 images" in message and "img_align_celeba/000004.jpg" in message
    assert "dataset.skip_bad=true" in message
    table = read(root, skip_bad=True)
    assert len(table) == 27 and table.skipped == {"missing image": 3}
    assert "img_align_celeba/000005.jpg" not in table.paths
    assert len(table.split) == 27 and len(table.attributes) == 27
    for image in (root / "img_align_celeba").iterdir():
        image.unlink()
    with pytest.raises(FairrunError, match="None of the 30 images .* Check dataset.root"):
        read(root, skip_bad=True)


def test_bad_values_in_annotation_files(tmp_path):
    root = make_celeba(tmp_path, n=20)
    attr = root / "list_attr_celeba.txt"
    attr.write_text(attr.read_text().replace("000003.jpg -1", "000003.jpg  0").replace("000003.jpg  1",
                                                                                         "000003.jpg  0"))
    with pytest.raises(FairrunError, match=r"value 0 for 000003.jpg in column .5_o_Clock_Shadow. \(1 bad"):
        read(root)
    make_celeba(root, n=20)
    attr.write_text(attr.read_text().replace("Young \n", "\n"))  # 39 names for 40 values per row
    with pytest.raises(FairrunError, match="more fields than the file name and the 39 attribute names"):
        read(root)
    make_celeba(root, n=20)
    part = root / "list_eval_partition.txt"
    part.write_text(part.read_text().replace("000002.jpg 0", "000002.jpg 7"))
    with pytest.raises(FairrunError, match="Unexpected partition value 7 for 000002.jpg"):
        read(root)


@pytest.mark.parametrize("keys, message", [
    (dict(layout="zip"), "Invalid value for 'dataset.layout': 'zip'. Accepted: auto, official or kaggle."),
    (dict(target="smiling"), "Invalid value for 'dataset.target': 'smiling'. Accepted: one of the 40"),
    (dict(protected=["Male", "Old"]), "Invalid value for 'dataset.protected': ['Male', 'Old']."),
    (dict(target="gender", protected="Male"), "Accepted: Male or gender, not both"),
    (dict(protected=["Young", "gender"], target="Male"), "Accepted: Male or gender, not both"),
])
def test_validate_rejects_bad_keys(keys, message):
    with pytest.raises(ConfigError) as err:
        validate(CelebAConfig(**keys))
    assert message in str(err.value)


def test_validate_accepts_defaults_and_alias():
    validate(CelebAConfig())
    validate(CelebAConfig(target="Blond_Hair", protected=["gender", "Young"], layout="kaggle"))


def test_dataset_celeba_composes_to_its_schema_defaults():
    node = compose_train(["dataset=celeba"]).dataset  # conf/dataset has no celeba.yaml: the schema is the option
    assert OmegaConf.to_object(node) == CelebAConfig()
    assert node.crop == "center" and node.crop_size == 178 and node.root is None


# -- identities (identity_CelebA.txt) ----------------------------------------------------------------

def identities_in_file(path: Path) -> dict[str, int]:
    """The file read independently of fairrun: image name -> identity number."""
    return {name: int(number) for name, number in (line.split() for line in path.read_text().splitlines())}


def test_identity_file_is_written_in_the_official_format_and_read_per_row(tmp_path):
    root = make_celeba(tmp_path, n=60, seed=2)
    lines = (root / "identity_CelebA.txt").read_text().splitlines()
    assert len(lines) == 60 and lines[0].split()[0] == "000001.jpg"
    assert all(len(line.split()) == 2 and line.split()[1].isdigit() for line in lines)
    table = read(root)
    numbers = identities_in_file(root / "identity_CelebA.txt")
    names = table.attribute_values["identity"]
    decoded = [int(names[code]) for code in table.attributes["identity"]]
    assert decoded == [numbers[Path(p).name] for p in table.paths]
    # every split has its own people (as in CelebA's partition), about three images each
    people = {split: {d for d, s in zip(decoded, table.split) if s == split}
              for split in ("train", "val", "test")}
    assert not (people["train"] & people["val"]) and not (people["train"] & people["test"])
    assert len(people["train"]) == 12
    # the images, attributes and partition do not depend on whether the identity file is written
    plain = read(make_celeba(tmp_path / "plain", n=60, seed=2, identities=False))
    pd.testing.assert_frame_equal(plain.attributes, table.attributes.drop(columns="identity"))
    assert "identity" not in plain.attributes


def test_identity_file_beside_the_kaggle_files_and_unlisted_images(tmp_path, caplog):
    root = make_celeba(tmp_path, n=40, layout="kaggle", seed=1, identities=True)
    text = (root / "identity_CelebA.txt").read_text().splitlines()
    (root / "identity_CelebA.txt").write_text("\n".join(text[:-2]) + "\n")  # the last two images unlisted
    with caplog.at_level(logging.WARNING):
        table = read(root)
    assert table.attributes["identity"].tolist()[-2:] == [-1, -1]
    assert (table.attributes["identity"].iloc[:-2] >= 0).all()
    assert "lists no identity for 2 of 40 images" in caplog.text


def test_bad_identity_files_are_named(tmp_path):
    root = make_celeba(tmp_path, n=20)
    path = root / "identity_CelebA.txt"
    path.write_text("000001.jpg 12 7\n000002.jpg 13 1\n")
    with pytest.raises(FairrunError, match="identity_CelebA.txt.*'000001.jpg 2880'"):
        read(root)
    path.write_text("000001.jpg twelve\n")
    with pytest.raises(FairrunError, match="integer identity number"):
        read(root)
    path.write_text("000001.jpg 12\n000001.jpg 13\n")
    with pytest.raises(FairrunError, match="000001.jpg with more than one identity"):
        read(root)


def test_identities_leave_the_cache_key_unchanged(tmp_path):
    prep = Preprocessing(16, "center", 178)
    root = make_celeba(tmp_path, n=20, seed=4)
    with_ids = read(root)
    (root / "identity_CelebA.txt").unlink()
    assert cache_key("celeba", with_ids, prep) == cache_key("celeba", read(root), prep)


def test_identified_split_keeps_rows_and_identities_aligned(tmp_path, monkeypatch):
    import dataclasses

    import torch

    from fairrun.data.celeba import IdentifiedSplit, with_identity
    from fairrun.data.groups import label_split
    from fairrun.data.imbalance import apply_imbalance
    from fairrun.data.registry import read_splits, validate_dataset_section
    from fairrun.core.sections import ImbalanceConfig
    from tests.conftest import compose_train

    monkeypatch.setenv("FAIRRUN_CACHE", str(tmp_path / "cache"))
    root = make_celeba(tmp_path / "data", n=60, seed=0)
    cfg = validate_dataset_section(compose_train(["dataset=celeba", f"dataset.root={root}",
                                                  "dataset.image_size=16"]).dataset)
    raw = read_splits(cfg, workers=1)
    train = with_identity(label_split("train", raw["train"], "Smiling", "Male"), raw["train"])
    assert isinstance(train, IdentifiedSplit) and len(train.identity) == len(train) == 36
    numbers = identities_in_file(root / "identity_CelebA.txt")
    names = raw["train"].attribute_values["identity"]
    expected = [numbers[f"{i:06d}.jpg"] for i in range(1, 37)]  # the training rows are images 1-36
    assert [int(names[c]) for c in train.identity] == expected
    probe = dataclasses.replace(train, images=torch.arange(36).view(36, 1, 1, 1))  # images = row numbers
    skewed = apply_imbalance(probe, ImbalanceConfig(ratio=0.8), seed=0)
    kept = skewed.images.flatten()
    assert isinstance(skewed, IdentifiedSplit) and len(skewed) < len(train)
    assert torch.equal(skewed.identity, train.identity[kept]) and torch.equal(skewed.g, train.g[kept])
    moved = dataclasses.replace(skewed, weights=None)
    assert isinstance(moved, IdentifiedSplit) and torch.equal(moved.identity, skewed.identity)


def test_identities_are_required_only_where_they_exist(tmp_path):
    from fairrun.data.celeba import require_identities
    from fairrun.data.registry import SyntheticDatasetConfig

    with pytest.raises(ConfigError) as err:
        require_identities(SyntheticDatasetConfig())
    message = str(err.value)
    assert "dataset=synthetic has no identities" in message and "celeba" in message
    assert "identity_CelebA.txt beside list_attr_celeba.txt" in message
    root = make_celeba(tmp_path, n=20)
    require_identities(CelebAConfig(root=str(root)))
    (root / "identity_CelebA.txt").unlink()
    expected = f"needs {root.resolve() / 'identity_CelebA.txt'}, which does not exist"
    with pytest.raises(ConfigError, match=expected):
        require_identities(CelebAConfig(root=str(root)))
