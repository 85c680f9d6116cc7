"""dataset=csv: paths, attribute coding, split column, missing values and the errors users meet."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from fairrun.data.csv_table import CSVConfig, read_table, validate
from fairrun.core.errors import ConfigError, FairrunError
from tests.conftest import compose_train
from tests.helpers.fixtures_csv import SPLIT_CYCLE, make_csv_dataset



def read(csv, **keys):
    return read_table(CSVConfig(csv=str(csv), **keys))


def rewrite(csv: Path, change) -> None:
    """Apply ``change`` to the CSV's DataFrame and write it back."""
    change(pd.read_csv(csv)).to_csv(csv, index=False)


def test_with_split_column(tmp_path):
    csv = make_csv_dataset(tmp_path, n=20)
    table = read(csv, split_column="split")
    assert table.root == tmp_path.resolve() and table.source == str(csv.resolve())
    assert table.paths[:2] == ["images/img_000.jpg", "images/img_001.jpg"]
    assert table.attribute_values == {"gender": ["Female", "Male"], "smiling": ["0", "1"],
                                      "young": ["False", "True"]}
    assert list(table.split) == [SPLIT_CYCLE[i % 5] for i in range(20)]
    assert list(table.attributes["smiling"]) == [(i // 2) % 2 for i in range(20)]
    assert list(table.attributes["young"]) == [int(i % 3 != 0) for i in range(20)]
    assert list(table.attributes.dtypes) == [np.int64] * 3 and table.skipped == {}


def test_without_split_column_and_attribute_subset(tmp_path):
    csv = make_csv_dataset(tmp_path, n=10, with_split=False)
    table = read(csv)
    assert table.split is None and list(table.attributes) == ["gender", "smiling", "young"]
    table = read(csv, attributes=["smiling", "gender"])
    assert list(table.attributes) == ["smiling", "gender"]
    with pytest.raises(FairrunError, match="no column 'age'.*'path', 'gender'"):
        read(csv, attributes=["age"])


def test_split_aliases_and_unknown_values(tmp_path):
    csv = make_csv_dataset(tmp_path, n=6, with_split=False)
    rewrite(csv, lambda f: f.assign(part=[0, 1, 2, 0, 1, 2], fold=["Train", "VALID", "validation", "test",
                                                                    "val", "train"]))
    assert list(read(csv, split_column="part", attributes=["gender"]).split) == ["train", "val", "test"] * 2
    assert list(read(csv, split_column="fold", attributes=["gender"]).split) == \
        ["train", "val", "val", "test", "val", "train"]
    rewrite(csv, lambda f: f.assign(fold=["train", "dev", "test", "train", "holdout", "val"]))
    with pytest.raises(FairrunError, match=r"unknown value\(s\) 'dev', 'holdout' in split column 'fold'"):
        read(csv, split_column="fold", attributes=["gender"])


def test_absolute_paths_and_explicit_root(tmp_path):
    csv = make_csv_dataset(tmp_path / "data", n=8, with_split=False)
    rewrite(csv, lambda f: f.assign(path=[str(tmp_path / "data" / p) for p in f["path"]]))
    moved = tmp_path / "elsewhere" / "labels.csv"
    moved.parent.mkdir()
    csv.rename(moved)
    table = read(moved)
    assert len(table) == 8 and all((table.root / p).is_file() for p in table.paths)
    rewrite(moved, lambda f: f.assign(path=[Path(p).name for p in f["path"]]))
    table = read(moved, root=str(tmp_path / "data" / "images"))
    assert table.root == (tmp_path / "data" / "images").resolve() and table.paths[0] == "img_000.jpg"


def test_csv_relative_to_launch_directory(tmp_path, monkeypatch):
    make_csv_dataset(tmp_path / "data", n=4, with_split=False)
    monkeypatch.chdir(tmp_path)
    assert len(read("data/labels.csv")) == 4


def test_missing_values_dropped_and_counted(tmp_path):
    csv = make_csv_dataset(tmp_path, n=12)

    def blank(frame):
        frame["smiling"] = frame["smiling"].astype(float)
        frame.loc[[1, 2], "smiling"] = np.nan
        frame["gender"] = frame["gender"].astype(object)
        frame.loc[[2, 5], "gender"] = " "
        return frame

    rewrite(csv, blank)
    table = read(csv, split_column="split")
    assert table.skipped == {"missing value in gender": 2, "missing value in smiling": 1}
    assert len(table) == 9 and len(table.split) == 9
    assert table.attribute_values["smiling"] == ["0", "1"]  # no trailing .0 from the float column
    assert "images/img_002.jpg" not in table.paths and "images/img_005.jpg" not in table.paths


def test_numeric_values_sorted_by_number(tmp_path):
    csv = make_csv_dataset(tmp_path, n=12, with_split=False)
    rewrite(csv, lambda f: f.assign(level=[i % 12 for i in range(12)], score=[-1, 1] * 6))
    table = read(csv, attributes=["level", "score"])
    assert table.attribute_values["level"] == [str(i) for i in range(12)]
    assert table.attribute_values["score"] == ["-1", "1"]
    assert list(table.attributes["level"]) == list(range(12))


def test_too_many_values_rejected(tmp_path):
    csv = make_csv_dataset(tmp_path, n=60, with_split=False)
    rewrite(csv, lambda f: f.assign(image_id=range(60)))
    suggestion = r"dataset\.attributes=\[gender,smiling,young\]"
    with pytest.raises(FairrunError, match=r"'image_id' \(60 values\).*" + suggestion):
        read(csv)
    assert len(read(csv, attributes=["gender", "smiling"])) == 60
    assert len(read(csv, max_values=60)) == 60


def test_missing_csv_describes_the_layout(tmp_path):
    with pytest.raises(FairrunError, match="dataset.csv is not set.*Example header: path,"):
        read_table(CSVConfig())
    with pytest.raises(FairrunError, match="does not exist.*Example header"):
        read(tmp_path / "nope.csv")
    csv = make_csv_dataset(tmp_path, n=4, with_split=False)
    with pytest.raises(FairrunError, match="no column 'file'"):
        read(csv, path_column="file")


def test_missing_images_reported_or_skipped(tmp_path):
    csv = make_csv_dataset(tmp_path, n=10)
    (tmp_path / "images" / "img_003.jpg").unlink()
    with pytest.raises(FairrunError, match=r"1 of 10 images .*img_003\.jpg.*dataset\.skip_bad=true"):
        read(csv)
    table = read(csv, skip_bad=True, split_column="split")
    assert table.skipped == {"missing image": 1} and len(table.split) == 9
    with pytest.raises(FairrunError, match="None of the 10 images"):
        read(csv, root=str(tmp_path / "images"), skip_bad=True)


def test_images_are_not_decoded(tmp_path, monkeypatch):
    csv = make_csv_dataset(tmp_path, n=6)
    monkeypatch.setattr("PIL.Image.open", lambda *a, **k: pytest.fail("read_table decoded an image"))
    assert len(read(csv)) == 6


@pytest.mark.parametrize("keys, key", [
    ({"max_values": 1}, "dataset.max_values"),
    ({"path_column": ""}, "dataset.path_column"),
    ({"split_column": "path"}, "dataset.split_column"),
    ({"attributes": ["gender", "path"]}, "dataset.attributes"),
    ({"attributes": []}, "dataset.attributes"),
])
def test_validate_rejects_bad_keys(keys, key):
    with pytest.raises(ConfigError, match=f"Invalid value for '{key}'"):
        validate(CSVConfig(**keys))
    validate(CSVConfig(csv="labels.csv", split_column="split", attributes=["gender"]))


def test_dataset_csv_composes_to_its_schema_defaults():
    node = compose_train(["dataset=csv"]).dataset  # conf/dataset has no csv.yaml: the schema is the option
    assert OmegaConf.to_object(node) == CSVConfig()


def test_paths_outside_the_root_are_counted_in_the_log(tmp_path, caplog):
    """Absolute paths stay allowed (documented), but the log says how many rows leave dataset.root."""
    import logging

    from fairrun.data.csv_table import rows_outside_root

    assert rows_outside_root(["a.jpg", "sub/../b.jpg", "../c.jpg", "/etc/d.jpg", "sub/../../e.jpg"],
                             tmp_path) == 3
    csv = make_csv_dataset(tmp_path / "data", n=6, with_split=False)
    outside = tmp_path / "outside.jpg"
    (tmp_path / "data" / "images" / "img_000.jpg").rename(outside)
    rewrite(csv, lambda f: f.assign(path=["../outside.jpg", *f["path"][1:]]))
    with caplog.at_level(logging.WARNING):
        table = read(csv)
    assert len(table.paths) == 6
    assert "1 of 6 image path(s) point outside dataset.root" in caplog.text
