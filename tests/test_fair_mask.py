"""Fair feature masking: the masked bottleneck, unit scoring, the mask in checkpoints, and its effect."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_module
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fairrun import rundir
from fairrun.config import load_run_config, validate_run_config
from fairrun.data.base import LabeledSplit
from fairrun.data.batches import to_float
from fairrun.data.registry import load_dataset
from fairrun.core.errors import ConfigError
from fairrun.methods import build_method
from fairrun.methods.fair_mask import (BottleneckClassifier, FairMask, FairMaskConfig, accuracy_rank,
                                       bottleneck_activations, choose_units, corr_scores, logreg_scores)
from fairrun.models import build_model
from fairrun.models.classifier import Classifier
from fairrun.training import run_training
from tests.conftest import compose_train
from tests.evidence import SEEDS, per_seed, results


def fair_mask(num_groups=2, num_classes=3, **keys):
    return build_method(FairMaskConfig(**keys), num_classes=num_classes, num_groups=num_groups)


def tiny_model(latent_dim=5, num_classes=3):
    torch.manual_seed(0)
    return Classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, latent_dim)), latent_dim,
                      num_classes)


# -- the model ---------------------------------------------------------------------------------
def test_adapt_model_adds_a_relu_bottleneck_with_a_mask_buffer_inside_the_model():
    method = fair_mask(latent_dim=6, top_k=2)
    model = method.adapt_model(tiny_model())
    assert isinstance(model, BottleneckClassifier) and isinstance(model, Classifier)
    assert tuple(model.bottleneck.linear.weight.shape) == (6, 5)
    assert tuple(model.head.weight.shape) == (3, 6) and model.latent_dim == 6
    x = torch.randn(7, 1, 2, 2)
    out = method.forward(model, x)
    assert out.latent.shape == (7, 6) and out.logits.shape == (7, 3)
    assert (out.latent >= 0).all()  # ReLU
    assert torch.allclose(model(x), out.logits)  # the model alone gives the same scores
    state = model.state_dict()
    assert torch.equal(state["bottleneck.mask"], torch.ones(6))
    assert "bottleneck.mask" not in dict(model.named_parameters())  # a buffer: saved, never trained
    assert method.adapt_model(model) is model  # applying it twice changes nothing


def test_mask_zeros_exactly_the_chosen_units_and_the_unmasked_variant_restores_it():
    method = fair_mask(latent_dim=8, top_k=2)
    model = method.adapt_model(tiny_model())
    torch.nn.init.constant_(model.bottleneck.linear.bias, 1.0)  # every unit active
    x = torch.randn(20, 1, 2, 2)
    before = model.features(x)
    method._set_mask(model.bottleneck, [1, 6])
    after = model.features(x)
    assert (after[:, [1, 6]] == 0).all() and (before[:, [1, 6]] != 0).any()
    keep = [0, 2, 3, 4, 5, 7]
    assert torch.equal(after[:, keep], before[:, keep])
    assert not torch.equal(model(x), model.head(before))
    with method.evaluation_variants()["unmasked"]():
        assert torch.equal(model.features(x), before)
    assert model.bottleneck.mask.tolist() == [1, 0, 1, 1, 1, 1, 0, 1]


# -- scoring -----------------------------------------------------------------------------------
def hand_latent(groups, unit=3, d=6, seed=0):
    """Latent (N, d): unit ``unit`` is the group id, the others noise."""
    rng = np.random.default_rng(seed)
    latent = rng.random((len(groups), d))
    latent[:, unit] = groups
    return latent


@pytest.mark.parametrize("num_groups", [2, 3])
def test_both_scores_rank_the_unit_that_is_the_group_id_first(num_groups):
    g = np.random.default_rng(1).integers(0, num_groups, 600)
    latent = hand_latent(g)
    for scores in (corr_scores(latent, g), logreg_scores(latent, g)):
        assert scores.shape == (6,) and np.argmax(scores) == 3
        assert scores[3] > 3 * np.delete(scores, 3).max()
    assert corr_scores(latent, g)[3] == pytest.approx(1.0)


def test_logreg_score_is_the_coefficient_spread_across_groups_and_abs_coef_for_two():
    g3 = np.random.default_rng(1).integers(0, 3, 600)
    latent = hand_latent(g3)
    scores = logreg_scores(latent, g3)
    fit = LogisticRegression(max_iter=2000).fit(StandardScaler().fit_transform(latent), g3)
    assert np.allclose(scores, fit.coef_.max(axis=0) - fit.coef_.min(axis=0))
    g2 = g3 % 2
    fit2 = LogisticRegression(max_iter=2000).fit(StandardScaler().fit_transform(latent), g2)
    assert np.allclose(logreg_scores(latent, g2), np.abs(fit2.coef_[0]))


def test_corr_score_uses_ranks_and_constant_units_score_zero():
    latent = np.zeros((4, 2))
    latent[:, 0] = [0.0, 1.0, 2.0, 3.0]
    assert corr_scores(latent, np.array([0, 1, 2, 3])).tolist() == [pytest.approx(1.0), 0.0]
    # groups ranked by validation accuracy: least accurate = 0; no rows (NaN) last; ties by id
    assert accuracy_rank(np.array([0.9, 0.5, np.nan, 0.7, 0.5])).tolist() == [3, 0, 4, 2, 1]


def test_threshold_and_top_k_choose_units():
    scores = np.array([0.1, 0.8, 0.3, 0.8, 0.05])
    assert choose_units(scores, top_k=2, threshold=None) == [1, 3]
    assert choose_units(scores, top_k=3, threshold=None) == [1, 2, 3]
    assert choose_units(scores, top_k=0, threshold=None) == []
    assert choose_units(scores, top_k=None, threshold=0.2) == [1, 2, 3]
    assert choose_units(scores, top_k=None, threshold=0.9) == []


def pixel_split(g, y, name="train", dim=4, unit=2):
    """1x1xdim images: pixel ``unit`` is bright for group 1, the others random."""
    rng = np.random.default_rng(len(g))
    pixels = rng.integers(0, 256, (len(g), dim, 1, 1))
    pixels[:, unit, 0, 0] = np.where(np.asarray(g) == 1, 255, 0)
    return LabeledSplit(name=name, images=torch.tensor(pixels, dtype=torch.uint8), y=torch.tensor(y),
                        g=torch.tensor(g), group_names=["A", "B"], class_names=["no", "yes"])


@pytest.mark.parametrize("score", ["corr", "logreg"])
@pytest.mark.parametrize("choice", [{"top_k": 1}, {"threshold": 0.5, "top_k": None}])
def test_after_fit_masks_the_unit_that_carries_the_group_and_records_it(score, choice):
    """Bottleneck unit j = relu(pixel j + 1): unit 2 is the group; after_fit masks it (and only it)."""
    method = fair_mask(num_classes=2, latent_dim=4, score=score, **choice)
    if score == "logreg" and "threshold" in choice:
        method.cfg.threshold = 3.0  # logreg scores are coefficient sizes, not in [0, 1]
    model = method.adapt_model(Classifier(torch.nn.Flatten(), 4, 2))
    with torch.no_grad():
        model.bottleneck.linear.weight.copy_(torch.eye(4))
        model.bottleneck.linear.bias.fill_(1.0)
    rng = np.random.default_rng(0)
    g, y = rng.integers(0, 2, 400), rng.integers(0, 2, 400)
    train, val = pixel_split(g, y), pixel_split(g[:100], y[:100], "val")
    method.after_fit(model, val, train)
    assert method.masked_units == [2]
    assert model.bottleneck.mask.tolist() == [1, 1, 0, 1]
    assert int(np.argmax(method.scores)) == 2 and len(method.scores) == 4
    assert method.extra_results() == {"masked_units": "2", "n_masked": 1}
    assert (bottleneck_activations(model, train.images)[:, 2] > 0).any()  # activations are read unmasked
    method.after_fit(model, val, train)  # idempotent: scores the unmasked model again
    assert method.masked_units == [2]
    again = fair_mask(num_classes=2, latent_dim=4, score=score, **choice)
    again.load_state_dict(method.state_dict())
    assert again.masked_units == [2] and again.scores == method.scores
    assert again.group_rank == method.group_rank and sorted(again.group_rank) == [0, 1]


# -- configuration -----------------------------------------------------------------------------
def test_default_config_and_validation_errors():
    cfg = validate_run_config(compose_train(["method=fair_mask"]))
    assert cfg.method == FairMaskConfig(latent_dim=32, score="corr", top_k=4, threshold=None)
    ok = validate_run_config(compose_train(["method=fair_mask", "method.threshold=0.3", "method.top_k=null",
                                            "method.score=logreg"]))
    assert ok.method.threshold == 0.3 and ok.method.top_k is None
    bad = {
        ("method.threshold=0.3",): "exactly one of 'method.top_k' and 'method.threshold'",
        ("method.top_k=null",): "exactly one of 'method.top_k' and 'method.threshold'",
        ("method.top_k=33",): r"Invalid value for 'method.top_k': 33",
        ("method.top_k=-1",): r"Invalid value for 'method.top_k': -1",
        ("method.top_k=null", "method.threshold=-0.1"): r"Invalid value for 'method.threshold'",
        ("method.score=gini",): r"Invalid value for 'method.score': 'gini'. Accepted: one of corr, logreg",
        ("method.latent_dim=0",): r"Invalid value for 'method.latent_dim': 0",
        ("+method.units=3",): r"Unknown key 'method.units'",
    }
    for overrides, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            validate_run_config(compose_train(["method=fair_mask", *overrides]))


# -- end to end --------------------------------------------------------------------------------
def test_training_writes_masked_and_unmasked_rows_and_fairrun_eval_reproduces_the_masked_ones(tiny_cfg,
                                                                                              tmp_path):
    from fairrun.evaluation.rerun import run_eval

    run = tmp_path / "run"
    res = run_training(tiny_cfg("method=fair_mask", "method.top_k=3"), run)
    splits = res["split"].tolist()
    for split in ("val", "test", "val_unmasked", "test_unmasked"):
        assert split in splits
    best = torch.load(run / rundir.BEST, weights_only=True)
    masked = best["method"]["masked_units"]
    assert len(masked) == 3 and len(best["method"]["scores"]) == 32
    mask = best["model"]["bottleneck.mask"]
    assert mask.sum() == 29 and mask[masked].sum() == 0
    assert (res["masked_units"] == ",".join(map(str, masked))).all() and (res["n_masked"] == 3).all()
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        eval_cfg = compose(config_name="eval", overrides=[f"run_dir={run}", "gpu=cpu"])
    again = run_eval(run, eval_cfg).set_index("split")
    rows = res.set_index("split")
    for split in ("val", "test"):
        for key in ("accuracy", "worst_group_acc", "dp_diff"):
            assert again.loc[split, key] == rows.loc[split, key]
    # the report the integrator writes from Trainer.finish (see FairMask.write_files)
    method = build_method(validate_run_config(compose_train(["method=fair_mask"])).method,
                          num_classes=2, num_groups=2)
    method.load_state_dict(best["method"])
    method.write_files(run)
    report = json.loads((run / "fair_mask.json").read_text())
    assert report["masked_units"] == masked and len(report["scores"]) == 32
    assert set(report["group_rank"]) == {"A", "B"}


# -- evidence ----------------------------------------------------------------------------------
# Balanced groups (750 + 750 training images, otherwise the tests/evidence.py budget): the group
# is visible in every image, so the unmasked bottleneck encodes it strongly. On the rare-group
# set-up itself (30 group-B training images) masking 4 of 32 units left decodability at ~0.99.
BALANCED = ("dataset.n_train=1500", "imbalance.ratio=null", "imbalance.size=null")
FAIR_MASK = ["method=fair_mask"]
TOP_KS = (4, 8)


def decodability(latent: np.ndarray, g: np.ndarray) -> float:
    """Held-out balanced accuracy of a logistic regression predicting the group from the latent
    (fit on a fixed random half of the test split, scored on the other half)."""
    order = np.random.default_rng(0).permutation(len(g))
    fit_rows, score_rows = order[: len(g) // 2], order[len(g) // 2:]
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    probe.fit(latent[fit_rows], g[fit_rows])
    return balanced_accuracy_score(g[score_rows], probe.predict(latent[score_rows]))


@torch.no_grad()
def model_latents(model, images) -> np.ndarray:
    """The head's input as the model computes it (masked bottleneck), eval mode, batched."""
    model.eval()
    return torch.cat([model.features(to_float(images[i:i + 500], torch.device("cpu")))
                      for i in range(0, images.shape[0], 500)]).numpy()


def measure_masking(seed: int) -> dict[str, float]:
    """One default fair_mask run (ERM with a 32-unit bottleneck; the mask is chosen after training):
    held-out group decodability (:func:`decodability`) and test accuracy of its test latents unmasked and
    with the top k units of each score masked (k in TOP_KS; the run itself masked the top 4 by corr, the
    other masks are applied to the same trained model: choosing the mask does not change training)."""
    (res,) = results(FAIR_MASK, seeds=(seed,), extra=BALANCED)
    run_dir = res["run_dir"].iloc[0]
    cfg = load_run_config(f"{run_dir}/{rundir.RUN_CONFIG}")
    best = rundir.load_checkpoint(f"{run_dir}/{rundir.BEST}")
    method = build_method(cfg.method, num_classes=2, num_groups=2)
    model = method.adapt_model(build_model(cfg.model, 3, 32, 2))
    model.load_state_dict(best["model"])
    method.load_state_dict(best["method"])
    splits = load_dataset(cfg.dataset)
    images, g, y = splits["test"].images, splits["test"].g.numpy(), splits["test"].y
    masked = model_latents(model, images)
    assert len(method.masked_units) == 4 and (masked[:, method.masked_units] == 0).all()
    with method.unmasked():
        unmasked = model_latents(model, images)

    def accuracy(latent):
        with torch.no_grad():
            return float((model.head(torch.from_numpy(latent)).argmax(dim=1) == y).float().mean())

    row = {"decod_unmasked": decodability(unmasked, g), "acc_unmasked": accuracy(unmasked)}
    assert row["acc_unmasked"] == pytest.approx(res.set_index("split").loc["test_unmasked", "accuracy"])
    for score in ("corr", "logreg"):
        scorer = FairMask(FairMaskConfig(score=score), num_classes=2, num_groups=2)
        scorer.after_fit(model, splits["val"], splits["train"])  # scores the unmasked model
        if score == "corr":
            assert scorer.masked_units == method.masked_units
        for k in TOP_KS:
            units = choose_units(np.asarray(scorer.scores), k, None)
            latent = unmasked.copy()
            latent[:, units] = 0  # what the mask buffer does to the head's input
            row[f"decod_{score}{k}"] = decodability(latent, g)
            row[f"acc_{score}{k}"] = accuracy(latent)
    assert row["acc_corr4"] == pytest.approx(res.set_index("split").loc["test", "accuracy"])
    return row


def test_masking_reduces_how_well_the_group_can_be_decoded_from_the_latent():
    """Default fair_mask runs, seeds 0-4 (tests/evidence.py: how the numbers were measured and the
    thresholds set). Masking 4 of 32 units removes only part of what the latent encodes: the group stays
    far above chance (0.5) decodable. Asserted, on 5-seed means: masking the top 4 units by the logreg
    score lowers decodability; the default corr score's top 4 does not raise it (its drop, 0.025-0.043
    on average, is not 3 standard errors above 0); both cost less than 0.12 of accuracy. Masking the top
    8 lowers decodability more (corr: 0.08-0.10) but costs up to 0.39 of accuracy on a seed, so it is not
    asserted; masking 16 left seed 0's model at chance. Seed 3's model did not learn the task under any kernel
    setting (accuracy ~0.5).

    Measured (per seed 0, 1, 2, 3, 4, then the mean):
      decodability unmasked  native  0.984 0.962 0.984 0.976 0.978 (0.977)
                             default 0.931 0.950 0.988 0.998 0.938 (0.961)
                             avx2    0.970 0.856 0.986 0.988 0.982 (0.956)
      decod. corr top 4      native  0.914 0.869 0.972 0.958 0.955 (0.934)
                             default 0.881 0.934 0.984 0.998 0.886 (0.937)
                             avx2    0.940 0.750 0.960 0.960 0.974 (0.917)
      decod. logreg top 4    native  0.944 0.892 0.944 0.929 0.923 (0.926)
                             default 0.909 0.888 0.960 0.961 0.912 (0.926)
                             avx2    0.889 0.737 0.962 0.960 0.954 (0.901)
      decod. corr top 8      native  0.894 0.708 0.960 0.903 0.905 (0.874)
                             default 0.805 0.860 0.927 0.970 0.832 (0.879)
                             avx2    0.761 0.753 0.925 0.926 0.922 (0.857)
      accuracy unmasked      native  0.897 0.962 0.879 0.513 0.929 (0.836)
                             default 0.907 0.965 0.923 0.506 0.924 (0.845)
                             avx2    0.833 0.968 0.921 0.502 0.948 (0.834)
      acc. corr top 4        native  0.786 0.966 0.841 0.504 0.836 (0.787)
                             default 0.874 0.964 0.936 0.503 0.834 (0.822)
                             avx2    0.775 0.962 0.781 0.503 0.948 (0.794)
      acc. logreg top 4      native  0.905 0.963 0.873 0.506 0.907 (0.831)
                             default 0.818 0.964 0.760 0.500 0.930 (0.794)
                             avx2    0.920 0.843 0.913 0.520 0.937 (0.827)
      acc. corr top 8        native  0.901 0.966 0.796 0.493 0.625 (0.756)
                             default 0.517 0.966 0.892 0.493 0.811 (0.736)
                             avx2    0.567 0.660 0.827 0.502 0.867 (0.685)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      decod. drop, logreg top 4 > 0.01 (mean): 0.051 / 0.035 / 0.056, bound 0.011, margin 0.025
      decod. drop, corr top 4 > -0.01 (mean): 0.043 / 0.025 / 0.040, bound -0.007, margin 0.035
      accuracy unmasked > 0.6 (mean): 0.836 / 0.845 / 0.834, bound 0.604, margin 0.234
      acc. corr top 4 - unmasked > -0.12 (mean): -0.049 / -0.023 / -0.041, bound -0.103, margin 0.071
      acc. logreg top 4 - unmasked > -0.12 (mean): -0.005 / -0.051 / -0.008, bound -0.103, margin 0.069
    """
    table = pd.DataFrame([measure_masking(seed) for seed in SEEDS])
    numbers, mean = per_seed(table), table.mean()
    print("\n" + table.round(3).to_string())
    drop = {k: mean["decod_unmasked"] - mean[f"decod_{k}"] for k in ("corr4", "logreg4")}
    assert drop["logreg4"] > 0.01, (drop, numbers)
    assert drop["corr4"] > -0.01, (drop, numbers)
    assert mean["acc_unmasked"] > 0.6, numbers  # the bottleneck model learnt the task
    for k in ("corr4", "logreg4"):
        assert mean[f"acc_{k}"] > mean["acc_unmasked"] - 0.12, (k, numbers)
