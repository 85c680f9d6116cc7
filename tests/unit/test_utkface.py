"""dataset=utkface: labels from file names, malformed names skipped, recursive search, age groups."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from fairrun.data.utkface import RACE_VALUES, UTKFaceConfig, read_table, validate
from fairrun.core.errors import ConfigError, FairrunError
from tests.conftest import compose_train
from tests.helpers.fixtures_utkface import RACELESS_NAMES, make_utkface, utkface_name



def read(root, **keys):
    return read_table(UTKFaceConfig(root=str(root), **keys))


def touch(folder: Path, *names: str) -> None:
    """Empty files are enough: read_table never decodes an image."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_names_parsed_with_utkface_gender_coding(tmp_path):
    make_utkface(tmp_path / "UTKFace", n=20)
    table = read(tmp_path / "UTKFace")
    assert len(table) == 20 and table.split is None
    assert table.skipped == {"malformed file name": 3}
    assert table.attribute_values["gender"] == ["Female", "Male"]
    assert table.attribute_values["race"] == ["White", "Black", "Asian", "Indian", "Others"]
    assert set(table.attribute_values) == {"gender", "race", "age_group", "age_decade"}
    assert list(table.attributes.dtypes) == [np.int64] * 4
    for path, row in zip(table.paths, table.attributes.itertuples()):
        age, gender, race = (int(v) for v in path.split("_")[:3])
        assert table.attribute_values["gender"][row.gender] == ("Male" if gender == 0 else "Female")
        assert table.attribute_values["race"][row.race] == RACE_VALUES[race]
        assert row.age_group == int(age >= 30)
    assert set(table.attributes["race"]) == set(range(5)) and set(table.attributes["gender"]) == {0, 1}
    assert not any(p in RACELESS_NAMES for p in table.paths)


def test_chip_and_in_the_wild_names_found_recursively(tmp_path):
    make_utkface(tmp_path / "crop_part1", n=10, chip=True, malformed=False, seed=1)
    make_utkface(tmp_path / "wild" / "part2", n=10, chip=False, malformed=False, seed=2)
    touch(tmp_path / "wild", "landmark_list_part1.txt", "._25_0_2_20170116174525125.jpg")
    table = read(tmp_path)
    assert len(table) == 20 and table.skipped == {}
    assert sum(p.startswith("crop_part1/") and p.endswith(".jpg.chip.jpg") for p in table.paths) == 10
    wild = [p for p in table.paths if p.startswith("wild/part2/")]
    assert len(wild) == 10 and not any(p.endswith(".chip.jpg") for p in wild)
    assert all((tmp_path / p).is_file() for p in table.paths)


def test_malformed_and_out_of_range_names_counted(tmp_path, caplog):
    touch(tmp_path, utkface_name(30, 0, 0, 1), utkface_name(30, 2, 0, 2), utkface_name(30, 0, 5, 3),
          utkface_name(117, 1, 1, 4), "39_1_20170116174525125.jpg.chip.jpg", "face.jpg", "notes.txt")
    table = read(tmp_path)
    assert len(table) == 1
    assert table.skipped == {"label out of range": 3, "malformed file name": 2}
    assert "malformed file name" in caplog.text


def test_age_group_threshold_and_decades(tmp_path):
    ages = [0, 5, 29, 30, 45, 69, 70, 116]
    touch(tmp_path, *(utkface_name(age, 1, 0, i) for i, age in enumerate(ages)))
    for threshold in (30, 50):
        table = read(tmp_path, age_threshold=threshold)
        parsed = [int(p.split("_")[0]) for p in table.paths]
        names = table.attribute_values
        assert names["age_group"] == [f"under_{threshold}", f"{threshold}_plus"]
        groups = [names["age_group"][c] for c in table.attributes["age_group"]]
        assert groups == [f"under_{threshold}" if a < threshold else f"{threshold}_plus" for a in parsed]
    decades = dict(zip(parsed, (names["age_decade"][c] for c in table.attributes["age_decade"])))
    assert decades == {0: "0-9", 5: "0-9", 29: "20-29", 30: "30-39", 45: "40-49", 69: "60-69", 70: "70+",
                       116: "70+"}
    assert "age" not in table.attributes


def test_no_valid_image_explains_naming_and_source(tmp_path):
    touch(tmp_path, *RACELESS_NAMES)
    with pytest.raises(FairrunError, match=r"\[age\]_\[gender\]_\[race\].*susanqq.github.io/UTKFace") as err:
        read(tmp_path)
    assert "3 .jpg file(s)" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FairrunError, match="no .jpg file"):
        read(tmp_path / "empty")


def test_root_must_be_set():
    with pytest.raises(FairrunError, match="dataset.root is not set"):
        read_table(UTKFaceConfig())


def test_images_are_not_decoded(tmp_path, monkeypatch):
    make_utkface(tmp_path, n=10, malformed=False)
    monkeypatch.setattr("PIL.Image.open", lambda *a, **k: pytest.fail("read_table decoded an image"))
    assert len(read(tmp_path)) == 10


@pytest.mark.parametrize("threshold", [0, 117, "30", True])
def test_validate_rejects_bad_age_threshold(threshold):
    with pytest.raises(ConfigError, match=r"'dataset.age_threshold'.*1 to 116"):
        validate(UTKFaceConfig(age_threshold=threshold))
    validate(UTKFaceConfig(age_threshold=116))


def test_dataset_utkface_composes_to_its_schema_defaults():
    node = compose_train(["dataset=utkface"]).dataset  # conf/dataset has no utkface.yaml: the schema is the option
    assert OmegaConf.to_object(node) == UTKFaceConfig()
