"""dataset=imdb_wiki: the .mat struct, ages from dob, filters, sources, layouts and cleaned sheets."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy.io import loadmat

from fairrun.data import imdb_wiki
from fairrun.data.imdb_wiki import IMDBWikiConfig, ages_at_photo, read_table, validate
from fairrun.core.errors import ConfigError, FairrunError
from tests.conftest import compose_train
from tests.helpers.fixtures_imdb_wiki import datenum, make_imdb_clean_sheet, make_imdb_wiki

N = 80  # fixture rows: 8 no face, 8 second face, 8 unknown gender, 4 implausible ages (disjoint)
NO_FILTERS = dict(drop_bad_age=False, drop_no_face=False, drop_multiple_faces=False,
                  drop_unknown_gender=False)


@pytest.fixture(scope="module")
def imdb_parent(tmp_path_factory) -> Path:
    """A folder holding imdb_crop/ (imdb.mat + NN/ images), shared by the read-only tests."""
    parent = tmp_path_factory.mktemp("imdb")
    make_imdb_wiki(parent / "imdb_crop", n=N)
    return parent


def read(root, **keys):
    return read_table(IMDBWikiConfig(root=str(root), **keys))


def named(table, attribute):
    return [table.attribute_values[attribute][c] for c in table.attributes[attribute]]


def test_ages_from_dob_hand_computed():
    dob = np.array([datenum(date(1899, 5, 10)), datenum(date(1950, 7, 1)), datenum(date(1990, 12, 31), 0.7),
                    datenum(date(1950, 6, 30)), datenum(date(2000, 1, 1)), 0.0, np.nan, 366.0])
    taken = np.array([1968, 1980, 2010, 1980, 2000, 2000, 2000, 2000])
    ages = ages_at_photo(dob, taken)
    # 1968 - 1899 = 69 (born in May); born in July or later: one less.
    np.testing.assert_array_equal(ages[:5], [69, 29, 19, 30, 0])
    assert np.isnan(ages[5:]).all()


def test_mat_parsed_and_filters_counted(imdb_parent):
    table = read(imdb_parent / "imdb_crop")
    assert table.skipped == {"no face": 8, "multiple faces": 8, "unknown gender": 8,
                             "unknown or implausible age": 4}
    assert len(table) == N - 28 and table.split is None
    assert table.root == (imdb_parent / "imdb_crop").resolve()
    assert table.attribute_values == {"gender": ["Female", "Male"], "age_group": ["under_30", "30_plus"],
                                      "age_decade": ["0-9", "10-19", "20-29", "30-39", "40-49", "50-59",
                                                     "60-69", "70+"]}
    assert table.paths[:3] == ["00/nm0000000_rm100000_1899-5-10_1968.jpg",
                               "01/nm0000001_rm100001_1950-7-1_1980.jpg",
                               "02/nm0000002_rm100002_1990-12-31_2010.jpg"]
    assert named(table, "gender")[:3] == ["Female", "Male", "Female"]
    assert named(table, "age_group")[:3] == ["30_plus", "under_30", "under_30"]
    assert named(table, "age_decade")[:3] == ["60-69", "20-29", "10-19"]
    assert list(table.attributes.dtypes) == [np.int64] * 3


def test_filters_off_keep_unknown_values(imdb_parent):
    table = read(imdb_parent, **NO_FILTERS)
    assert len(table) == N and table.skipped == {}
    assert table.attribute_values["gender"] == ["Female", "Male", "Unknown"]
    assert named(table, "gender").count("Unknown") == 8
    assert table.attribute_values["age_group"] == ["under_30", "30_plus", "Unknown"]
    assert named(table, "age_decade").count("Unknown") == 4


def test_min_face_score(imdb_parent):
    meta = loadmat(str(imdb_parent / "imdb_crop" / "imdb.mat"))["imdb"][0, 0]
    scores = dict(zip((c[0] for c in meta["full_path"].ravel()), meta["face_score"].ravel()))
    table = read(imdb_parent, **{**NO_FILTERS, "drop_no_face": True}, min_face_score=3.0)
    below = sum(np.isfinite(s) and s < 3.0 for s in scores.values())
    assert table.skipped == {"no face": 8, "face score below min_face_score": below} and below > 0
    assert all(scores[p] >= 3.0 for p in table.paths)


def test_wiki_source_from_either_root(tmp_path):
    make_imdb_wiki(tmp_path / "wiki_crop", n=20, source="wiki")
    for root in (tmp_path, tmp_path / "wiki_crop"):
        table = read(root, source="wiki")
        assert table.root == (tmp_path / "wiki_crop").resolve() and table.source.endswith("wiki.mat")
        assert table.paths[0] == "00/1000_1899-5-10_1968.jpg"
        assert len(table) == 20 - 2 - 2 - 2 - 1
    with pytest.raises(FairrunError, match=r"imdb\.mat.*imdb_crop/imdb\.mat.*rrothe/imdb-wiki"):
        read(tmp_path, source="imdb")


def test_missing_images_reported_or_skipped(tmp_path):
    make_imdb_wiki(tmp_path, n=20)
    listed = read(tmp_path).paths
    for path in listed[:2]:
        (tmp_path / path).unlink()
    with pytest.raises(FairrunError, match=r"2 of \d+ images .* dataset\.skip_bad=true") as err:
        read(tmp_path)
    assert listed[0] in str(err.value)
    table = read(tmp_path, skip_bad=True)
    assert table.skipped["missing image"] == 2 and table.paths == listed[2:]


def test_clean_sheet_csv_one_level_up_without_mat(tmp_path, monkeypatch):
    sheet = make_imdb_clean_sheet(tmp_path / "imdb_crop", n=24, fmt="csv")
    monkeypatch.chdir(tmp_path)
    table = read("imdb_crop/..", labels="imdb_crop/imdb_clean.csv")
    assert table.root == (tmp_path / "imdb_crop").resolve() and table.source == str(sheet)
    assert len(table) == 24 and table.skipped == {} and table.split is None
    assert table.attribute_values == {"gender": ["Female", "Male"],
                                      "ethnicity": ["Asian", "Black", "Indian", "White"]}
    assert named(table, "gender") == [["Female", "Male"][i % 2] for i in range(24)]
    assert named(table, "ethnicity")[:4] == ["Asian", "Black", "Indian", "White"]


def test_clean_sheet_xlsx(tmp_path):
    pytest.importorskip("openpyxl")
    sheet = make_imdb_clean_sheet(tmp_path, n=12, fmt="xlsx")
    table = read(tmp_path, labels=str(sheet))
    assert named(table, "gender") == [["Female", "Male"][i % 2] for i in range(12)]
    assert table.attribute_values["ethnicity"] == ["Asian", "Black", "Indian", "White"]


def test_xlsx_without_openpyxl_says_how_to_install(tmp_path, monkeypatch):
    sheet = tmp_path / "clean.xlsx"
    sheet.write_bytes(b"not really a workbook")
    real = imdb_wiki.importlib.util.find_spec
    monkeypatch.setattr(imdb_wiki.importlib.util, "find_spec",
                        lambda name, *a: None if name == "openpyxl" else real(name, *a))
    with pytest.raises(FairrunError, match="pip install openpyxl"):
        read(tmp_path, labels=str(sheet))


def test_clean_sheet_bad_gender_and_missing_columns(tmp_path):
    sheet = make_imdb_clean_sheet(tmp_path, n=6, fmt="csv")
    sheet.write_text(sheet.read_text().replace(",Female,", ",robot,", 1))
    with pytest.raises(FairrunError, match="unexpected gender value.*'robot'"):
        read(tmp_path, labels=str(sheet))
    sheet.write_text("path,sex\n00/a.jpg,1\n")
    with pytest.raises(FairrunError, match="no column full_path, gender, ethnicity"):
        read(tmp_path, labels=str(sheet))


def test_images_are_not_decoded(imdb_parent, monkeypatch):
    monkeypatch.setattr("PIL.Image.open", lambda *a, **k: pytest.fail("read_table decoded an image"))
    assert len(read(imdb_parent)) == N - 28


@pytest.mark.parametrize("keys, message", [
    ({"source": "foo"}, "Invalid value for 'dataset.source': 'foo'. Accepted: imdb or wiki."),
    ({"age_threshold": 0}, "'dataset.age_threshold': 0. Accepted: an integer from 1 to 100."),
    ({"age_threshold": 101}, "'dataset.age_threshold': 101"),
    ({"min_face_score": float("inf")}, "'dataset.min_face_score': inf"),
    ({"labels": "clean.txt"}, "'dataset.labels': 'clean.txt'. Accepted: null or the path of a .csv or .xlsx"),
])
def test_validate_rejects_bad_keys(keys, message):
    with pytest.raises(ConfigError) as err:
        validate(IMDBWikiConfig(**keys))
    assert message in str(err.value)
    validate(IMDBWikiConfig(source="wiki", min_face_score=3.0, labels="clean.xlsx"))


def test_dataset_imdb_wiki_composes_to_its_schema_defaults():
    node = compose_train(["dataset=imdb_wiki"]).dataset  # conf/dataset has no imdb_wiki.yaml: the schema is the option
    assert OmegaConf.to_object(node) == IMDBWikiConfig()
