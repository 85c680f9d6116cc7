"""What a run writes to TensorBoard (fairrun.training.tensorboard), read back with TensorBoard's own loader:
readable run names in a sweep, HParams with the swept and the method's own keys, validation loss, per-group
TPR/FPR and per-cell accuracy, per-group PR curves and sample grids. One 2-job multirun, shared."""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
import torch

from fairrun.training import tensorboard as tb
from tests.conftest import TINY, run_fairrun

GROUPS = ("A", "B")
CLASSES = ("not_smiling", "smiling")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A multirun of two one-epoch fair_reg jobs (method.lam=1,10) with an imbalanced training set."""
    root = tmp_path_factory.mktemp("tb")
    args = [o for o in TINY if not o.startswith("trainer.epochs")]
    proc = run_fairrun("train", "-m", *args, "trainer.epochs=1", "method=fair_reg", "method.lam=1,10",
                       "imbalance.ratio=0.8", "imbalance.size=100", f"hydra.sweep.dir={root / 'sweep'}",
                       cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "sweep"


@pytest.fixture(scope="module")
def mux(sweep):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer(size_guidance={"images": 0, "tensors": 0, "scalars": 0})
    mux.AddRunsFromDirectory(str(sweep))
    mux.Reload()
    return mux


def _predictions(sweep, job: int, split: str) -> pd.DataFrame:
    pred = pd.read_pickle(sweep / str(job) / "predictions.pkl")
    return pred[pred["split"] == split]


def _last(mux, run: str, tag: str) -> float:
    return mux.Scalars(run, tag)[-1].value


def test_runs_are_named_by_the_swept_overrides(mux):
    assert sorted(mux.Runs()) == ["0/tb/lam=1", "1/tb/lam=10"]


def test_hparams_carry_method_keys_and_every_override(mux):
    from tensorboard.plugins.hparams import plugin_data_pb2

    for run, lam in (("0/tb/lam=1", 1.0), ("1/tb/lam=10", 10.0)):
        content = mux.GetAccumulator(run).PluginTagToContent("hparams")["_hparams_/session_start_info"]
        values = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        number = {k: v.number_value for k, v in values.items() if v.WhichOneof("kind") == "number_value"}
        text = {k: v.string_value for k, v in values.items() if v.WhichOneof("kind") == "string_value"}
        assert number["method.lam"] == lam
        assert number["imbalance.size"] == 100 and number["imbalance.ratio"] == pytest.approx(0.8)
        assert number["imbalance_ratio"] == pytest.approx(0.8) and number["trainer.epochs"] == 1
        assert number["dataset.n_train"] == 600 and number["seed"] == 0 and number["epochs"] == 1
        assert text["method"] == "fair_reg" and text["method.gap"] == "squared"
        assert text["method.group_weights"] == "none"  # None, as the dashboard can show it


def test_hparams_dashboard_lists_every_session_with_its_swept_value(sweep, mux):
    from tests.helpers.hparams import hparams_dashboard

    experiment, rows = hparams_dashboard(sweep)
    assert {"method.lam", "imbalance.size", "method.gap"} <= {h.name for h in experiment.hparam_infos}
    results = pd.read_pickle(sweep / "1" / "results.pkl").set_index("split")
    assert rows["1/tb/lam=10"].hparams["method.lam"].number_value == 10.0
    metrics = {m.name.tag: m.value for m in rows["1/tb/lam=10"].metric_values}
    assert metrics["hparam/test_accuracy"] == pytest.approx(results.loc["test", "accuracy"], abs=1e-6)


def test_validation_loss_rates_and_cell_accuracy_match_the_predictions(sweep, mux):
    for job, run in ((0, "0/tb/lam=1"), (1, "1/tb/lam=10")):
        val = _predictions(sweep, job, "val")  # one epoch: the evaluated model is the one validated
        y, score, pred, group = (val["y_true"].to_numpy(), val["y_score"].to_numpy().astype(np.float64),
                                 val["y_pred"].to_numpy(), val["group"].astype(str).to_numpy())
        p_true = np.where(y == 1, score, 1 - score)
        loss = -np.log(np.maximum(p_true, 1e-12)).mean()
        assert _last(mux, run, "val/loss") == pytest.approx(loss, rel=1e-4)
        for g in GROUPS:
            rows = group == g
            assert _last(mux, run, f"val_group_tpr/{g}") == pytest.approx((pred[rows & (y == 1)] == 1).mean())
            assert _last(mux, run, f"val_group_fpr/{g}") == pytest.approx((pred[rows & (y == 0)] == 1).mean())
            for c, name in enumerate(CLASSES):
                cell = rows & (y == c)
                assert _last(mux, run, f"val_cell_acc/{g},{name}") == pytest.approx((pred[cell] == c).mean())
    tags = mux.Runs()["0/tb/lam=1"]
    assert {"val/accuracy", "val_group_acc/A", "train/loss"} <= set(tags["scalars"])
    assert "custom_scalars__config__" in tags["tensors"]


def test_pr_curves_per_group_on_the_test_scores(sweep, mux):
    from tensorboard.util import tensor_util

    test = _predictions(sweep, 0, "test")
    for g in GROUPS:
        curve = tensor_util.make_ndarray(mux.Tensors("0/tb/lam=1", f"test_pr/{g}")[-1].tensor_proto)
        rows = test[test["group"] == g]
        # rows: TP, FP, TN, FN, precision, recall; column 0 = threshold 0 (every row predicted positive)
        assert curve[0, 0] == (rows["y_true"] == 1).sum() and curve[1, 0] == (rows["y_true"] == 0).sum()
        # column i: the rows in score buckets >= i of num_thresholds - 1 equal buckets (TensorBoard's)
        buckets = np.floor(rows["y_score"].to_numpy(np.float32) * np.float32(curve.shape[1] - 1))
        for i in (curve.shape[1] // 4, curve.shape[1] // 2, 3 * curve.shape[1] // 4):
            assert curve[0, i] == ((rows["y_true"] == 1).to_numpy() & (buckets >= i)).sum()
            assert curve[1, i] == ((rows["y_true"] == 0).to_numpy() & (buckets >= i)).sum()


def test_sample_grid_per_group_framed_by_correctness(sweep, mux):
    from PIL import Image

    val = _predictions(sweep, 0, "val")
    for g in GROUPS:
        event = mux.Images("0/tb/lam=1", f"val_samples/{g}")[-1]
        image = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))
        first = val[val["group"] == g].iloc[0]
        frame_x = 1 + (tb.MIN_WIDTH - tb.TILE - 2 * tb.BORDER) // 2  # inside the first sample's frame
        corner = tuple(int(v) for v in image[1, frame_x])
        assert corner == (tb.CORRECT if first["y_pred"] == first["y_true"] else tb.WRONG)
        assert image.shape[1] > 8 * tb.TILE  # eight samples side by side


# -- without training -------------------------------------------------------------------------------------

def test_run_name_short_keys_collisions_and_fallbacks():
    name = tb.run_name(["method=groupdro", "imbalance.ratio=0.9", "seed=1"])
    assert name == "method=groupdro,ratio=0.9,seed=1"
    assert tb.run_name(["+trainer.lr=0.1", "method.lr=2"]) == "trainer.lr=0.1,method.lr=2"
    assert tb.run_name(["init_from=a/b"]) == "init_from=a_b" and tb.run_name([]) == "run"
    long = tb.run_name([f"k{i}=v" for i in range(60)])
    assert len(long) == tb.MAX_NAME and long != tb.run_name([f"k{i}=v" for i in range(61)])


def test_log_dir_keeps_a_resumed_run_in_its_folder(tmp_path):
    assert tb.log_dir(tmp_path / "r", name="seed=1") == tmp_path / "r" / "tb" / "seed=1"
    (tmp_path / "r" / "tb" / "seed=0").mkdir(parents=True)
    (tmp_path / "r" / "tb" / "seed=0" / "events.out.tfevents.1").write_bytes(b"")
    (tmp_path / "r" / "tb" / "events.out.tfevents.2").write_bytes(b"")  # e.g. gan_debias' pairs image
    assert tb.log_dir(tmp_path / "r", resumed=True, name="other") == tmp_path / "r" / "tb" / "seed=0"
    assert tb.log_dir(tmp_path / "r", name="other") == tmp_path / "r" / "tb" / "other"
    (tmp_path / "old" / "tb").mkdir(parents=True)  # started before run names: events in tb/ itself
    (tmp_path / "old" / "tb" / "events.out.tfevents.1").write_bytes(b"")
    assert tb.log_dir(tmp_path / "old", resumed=True, name="seed=1") == tmp_path / "old" / "tb"


def test_hparam_values_and_multiclass_pr_curves_skipped(caplog):
    assert [tb.hparam_value(v) for v in (None, [1, 2], np.int64(3), True)] == ["none", "[1, 2]", 3, True]
    assert tb.hparam_value(float("nan")) is None

    class Writer:
        calls = 0

        def add_pr_curve(self, *args):
            self.calls += 1

    pred = pd.DataFrame({"y_true": [0, 1, 2], "y_score": [0.5, 0.6, 0.7], "group": ["A", "A", "B"]})
    writer = Writer()
    with caplog.at_level("INFO", logger="fairrun"):
        assert tb.write_pr_curves(writer, pred, list(GROUPS), 3, 0) == 0
    assert writer.calls == 0 and "3-class target" in caplog.text
    assert tb.validation_loss(torch.tensor([[0.25, 0.75], [1.0, 0.0]]), torch.tensor([1, 1])) == \
        pytest.approx((-math.log(0.75) - math.log(1e-12)) / 2)
