"""Fair feature masking: the masked bottleneck, unit scoring, the mask in checkpoints, and its effect."""
import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fairrun import rundir
from fairrun.config import validate_run_config
from fairrun.data.base import LabeledSplit
from fairrun.core.errors import ConfigError
from fairrun.methods import build_method
from fairrun.methods.fair_mask import BottleneckClassifier, FairMaskConfig, accuracy_rank, bottleneck_activations, choose_units, corr_scores, logreg_scores
from fairrun.models.classifier import Classifier
from fairrun.training import run_training
from tests.conftest import compose_train


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
# Balanced groups (750 + 750 training images, otherwise the tests/helpers/evidence.py budget): the group
# is visible in every image, so the unmasked bottleneck encodes it strongly. On the rare-group
# set-up itself (30 group-B training images) masking 4 of 32 units left decodability at ~0.99.
BALANCED = ("dataset.n_train=1500", "imbalance.ratio=null", "imbalance.size=null")
FAIR_MASK = ["method=fair_mask"]
TOP_KS = (4, 8)
