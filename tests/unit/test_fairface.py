"""FairFace reader: image folder per padding, race groups, age groups, service_test, errors, validation."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from fairrun.data.fairface import FairFaceConfig, read_table, validate
from fairrun.core.errors import ConfigError, FairrunError
from tests.conftest import compose_train
from tests.helpers.fixtures_fairface import LAYOUTS, make_fairface

RACES = ["White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern"]
# Written out independently of the module's table: UTKFace's groups.
UTK_GROUP = {"White": "White", "Black": "Black", "East Asian": "Asian", "Southeast Asian": "Asian",
             "Indian": "Indian", "Latino_Hispanic": "Others", "Middle Eastern": "Others"}


def read(root: Path, **keys):
    return read_table(FairFaceConfig(root=str(root), **keys))


def labels(root: Path) -> pd.DataFrame:
    """Both CSVs, train first, as the test reads them."""
    return pd.concat([pd.read_csv(root / "fairface_label_train.csv"),
                      pd.read_csv(root / "fairface_label_val.csv")], ignore_index=True)


def decoded(table, attribute: str) -> list[str]:
    return [table.attribute_values[attribute][c] for c in table.attributes[attribute]]


def test_default_read_train_and_test_splits_and_codes(tmp_path):
    root = make_fairface(tmp_path, n_train=70, n_val=30)
    table = read(root)
    assert table.source == "FairFace (padding 0.25)" and table.root == root.resolve()
    assert len(table) == 100 and table.skipped == {}
    assert table.paths[0] == "train/1.jpg" and table.paths[70] == "val/1.jpg"
    assert all((table.root / p).is_file() for p in table.paths)
    assert list(table.split) == ["train"] * 70 + ["test"] * 30  # no 'val': carved from train later
    assert list(table.attributes.columns) == ["gender", "race", "age", "age_group"]
    assert isinstance(table.attributes.index, pd.RangeIndex)
    assert all(dtype == np.int64 for dtype in table.attributes.dtypes)
    assert table.attribute_values["gender"] == ["Female", "Male"]
    assert table.attribute_values["race"] == RACES
    assert table.attribute_values["age"] == ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59",
                                             "60-69", "more than 70"]
    assert table.attribute_values["age_group"] == ["under_30", "30_plus"]
    truth = labels(root)
    for attribute in ("gender", "race", "age"):
        assert decoded(table, attribute) == truth[attribute].tolist()
    for split in ("train", "test"):
        rows = table.attributes[table.split == split]
        assert set(rows["race"]) == set(range(7)) and set(rows["gender"]) == {0, 1}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_image_folder_found_for_each_padding(tmp_path, layout):
    root = make_fairface(tmp_path, n_train=14, n_val=14, padding="both", layout=layout)
    for padding in (0.25, 1.25):
        table = read(root, padding=padding)
        assert table.root == (root / LAYOUTS[layout][padding]).resolve()
        assert table.source == f"FairFace (padding {padding})"
        assert len(table) == 28


def test_image_folder_candidates_in_order(tmp_path):
    for layout in ("root", "short", "zip_names"):
        make_fairface(tmp_path, n_train=14, n_val=14, layout=layout)
    assert read(tmp_path).root == (tmp_path / "fairface-img-margin025-trainval").resolve()
    shutil.rmtree(tmp_path / "fairface-img-margin025-trainval")
    assert read(tmp_path).root == (tmp_path / "margin025").resolve()
    shutil.rmtree(tmp_path / "margin025" / "train")  # a folder without train/ is not a candidate
    assert read(tmp_path).root == tmp_path.resolve()


def test_missing_image_folder_lists_every_candidate(tmp_path):
    root = make_fairface(tmp_path, n_train=14, n_val=14, padding=0.25, layout="root")
    with pytest.raises(FairrunError) as err:
        read(root, padding=1.25)
    message = str(err.value)
    for candidate in ("fairface-img-margin125-trainval/train", "margin125/train"):
        assert str(root.resolve() / candidate) in message
    assert "Missing: an image folder for padding 1.25" in message
    assert "fairface_label_train.csv" in message  # listed, although present
    assert "github.com/joojs/fairface" in message and "never downloads" in message


def test_image_dir_key(tmp_path):
    root = make_fairface(tmp_path / "data", n_train=14, n_val=14, padding="both", layout="short")
    assert read(root, image_dir="margin125").root == (root / "margin125").resolve()
    assert read(root, image_dir=str(root / "margin025")).root == (root / "margin025").resolve()
    with pytest.raises(FairrunError, match="Missing: an image folder for dataset.image_dir=elsewhere"):
        read(root, image_dir="elsewhere")


def test_missing_label_files(tmp_path):
    with pytest.raises(FairrunError) as err:
        read(tmp_path)
    message = str(err.value)
    assert str(tmp_path.resolve() / "fairface_label_train.csv") in message
    assert str(tmp_path.resolve() / "fairface_label_val.csv") in message
    for candidate in ("fairface-img-margin025-trainval/train", "margin025/train", "train/"):
        assert str(tmp_path.resolve() / candidate) in message
    assert "Missing: fairface_label_train.csv; fairface_label_val.csv; an image folder" in message
    assert "github.com/joojs/fairface" in message and "never downloads" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("race_groups, names", [
    (7, RACES),
    (5, ["White", "Black", "Asian", "Indian", "Others"]),
    (4, ["White", "Black", "Asian", "Indian"]),
])
def test_race_groups(tmp_path, race_groups, names):
    root = make_fairface(tmp_path, n_train=40, n_val=20)
    table = read(root, race_groups=race_groups)
    truth = labels(root)
    group = truth["race"] if race_groups == 7 else truth["race"].map(UTK_GROUP)
    dropped = group == "Others" if race_groups == 4 else np.zeros(len(truth), dtype=bool)
    assert table.attribute_values["race"] == names
    assert len(table) == 60 - dropped.sum()
    assert decoded(table, "race") == group[~dropped].tolist()
    assert table.paths == truth["file"][~dropped].tolist()
    counts = pd.Series(decoded(table, "race")).value_counts().to_dict()
    assert counts == group[~dropped].value_counts().to_dict()
    if race_groups == 4:
        assert table.skipped == {"race outside dataset.race_groups=4": int(dropped.sum())}
        assert dropped.sum() == truth["race"].isin(["Latino_Hispanic", "Middle Eastern"]).sum() > 0
    else:
        assert table.skipped == {}


@pytest.mark.parametrize("threshold", [3, 20, 30, 70])
def test_age_group(tmp_path, threshold):
    root = make_fairface(tmp_path, n_train=30, n_val=20)
    table = read(root, age_threshold=threshold)
    lower_edge = labels(root)["age"].map(lambda a: 70 if a == "more than 70" else int(a.split("-")[0]))
    assert table.attribute_values["age_group"] == [f"under_{threshold}", f"{threshold}_plus"]
    assert table.attributes["age_group"].tolist() == (lower_edge >= threshold).astype(int).tolist()


def test_service_test_only(tmp_path):
    root = make_fairface(tmp_path, n_train=30, n_val=20)
    truth = labels(root)
    table = read(root, service_test_only=True)
    assert table.paths == truth["file"][truth["service_test"]].tolist()
    assert table.skipped == {"service_test False (dataset.service_test_only=true)":
                             int((~truth["service_test"]).sum())}
    assert list(table.split) == ["train" if p.startswith("train/") else "test" for p in table.paths]
    assert len(read(root)) == 50


def test_label_csvs_without_service_test_column(tmp_path):
    root = make_fairface(tmp_path, n_train=14, n_val=14)
    for name in ("fairface_label_train.csv", "fairface_label_val.csv"):
        pd.read_csv(root / name).drop(columns="service_test").to_csv(root / name, index=False)
    assert len(read(root)) == 28
    with pytest.raises(FairrunError, match="no row of the FairFace label CSVs has service_test True"):
        read(root, service_test_only=True)


def test_missing_images_error_or_skipped(tmp_path):
    root = make_fairface(tmp_path, n_train=20, n_val=14)
    (root / "train" / "5.jpg").unlink()
    (root / "val" / "3.jpg").unlink()
    with pytest.raises(FairrunError) as err:
        read(root)
    message = str(err.value)
    assert "2 of 34 images" in message and "train/5.jpg" in message and "val/3.jpg" in message
    assert "dataset.skip_bad=true" in message
    table = read(root, skip_bad=True)
    assert len(table) == 32 and table.skipped == {"missing image": 2}
    assert "train/5.jpg" not in table.paths and "val/3.jpg" not in table.paths


def test_unknown_label_value_is_named(tmp_path):
    root = make_fairface(tmp_path, n_train=14, n_val=14)
    csv = root / "fairface_label_val.csv"
    csv.write_text(csv.read_text().replace(",White,", ",Caucasian,", 1))
    with pytest.raises(FairrunError, match="unexpected value.*'Caucasian'.*column 'race'"):
        read(root)


@pytest.mark.parametrize("keys, message", [
    (dict(padding=0.5), "Invalid value for 'dataset.padding': 0.5. Accepted: 0.25 or 1.25."),
    (dict(race_groups=6), ("Invalid value for 'dataset.race_groups': 6. Accepted: 7 (official races), "
                           "5 (UTKFace-compatible) or 4")),
    (dict(age_threshold=25), ("Invalid value for 'dataset.age_threshold': 25. Accepted: a lower edge of "
                              "a FairFace age bin: 3, 10, 20, 30, 40, 50, 60, 70.")),
    (dict(target="ethnicity"), ("Invalid value for 'dataset.target': 'ethnicity'. Accepted: one of "
                                "gender, race, age, age_group.")),
    (dict(protected=["race", "Race"]), "Invalid value for 'dataset.protected': ['race', 'Race']."),
    (dict(image_dir=""), "Invalid value for 'dataset.image_dir': ''."),
])
def test_validate_rejects_bad_keys(keys, message):
    with pytest.raises(ConfigError) as err:
        validate(FairFaceConfig(**keys))
    assert message in str(err.value)


def test_validate_accepts_good_keys():
    validate(FairFaceConfig())
    validate(FairFaceConfig(padding=1.25, race_groups=4, age_threshold=70, target="age_group",
                            protected=["race", "gender"], image_dir="imgs", service_test_only=True))


def test_dataset_fairface_composes_to_its_schema_defaults():
    node = compose_train(["dataset=fairface"]).dataset  # conf/dataset has no fairface.yaml: the schema is the option
    assert OmegaConf.to_object(node) == FairFaceConfig()
    assert node.root is None and node.padding == 0.25 and node.race_groups == 7
