"""Domain-independent training: one head per group, own-head training, summed-score inference."""
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module

from fairrun.config import validate_run_config
from fairrun.core.errors import ConfigError
from fairrun.evaluation.predictions import predict_proba
from fairrun.methods import Batch, build_method
from fairrun.methods.domain_independent import DomainIndependentConfig, GroupHeads
from fairrun.models.classifier import Classifier
from fairrun.training import run_training
from tests.conftest import compose_train
from tests.integration.test_methods_data import hand_split


def tiny_model(latent_dim=5, num_classes=3):
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, latent_dim))
    return Classifier(backbone, latent_dim, num_classes)


def di(num_groups=2, num_classes=3):
    return build_method(DomainIndependentConfig(), num_classes=num_classes, num_groups=num_groups)


def test_adapt_model_puts_one_head_per_group_inside_the_model():
    method = di(num_groups=2, num_classes=3)
    model = method.adapt_model(tiny_model())
    assert isinstance(model.head, GroupHeads)
    assert tuple(model.head.weight.shape) == (2 * 3, 5)
    x = torch.randn(7, 1, 2, 2)
    out = method.forward(model, x)
    assert out.group_logits.shape == (7, 2, 3) and out.logits.shape == (7, 3)
    assert torch.allclose(model(x), out.logits)  # the model alone gives the inference scores
    assert "head.active" in model.state_dict()


def test_training_uses_only_each_samples_own_head():
    method = di(num_groups=3, num_classes=2)
    model = method.adapt_model(tiny_model(num_classes=2))
    x = torch.randn(4, 1, 2, 2)
    g, y = torch.tensor([0, 0, 2, 2]), torch.tensor([1, 0, 1, 1])
    batch = Batch(x=x, y=y, g=g, index=torch.arange(4))
    out = method.forward(model, x)
    losses = method.per_sample_loss(out, batch)
    own = torch.stack([out.group_logits[i, g[i]] for i in range(4)])
    assert torch.allclose(losses, F.cross_entropy(own, y, reduction="none"))
    method.loss(out, batch).backward()
    grad = model.head.weight.grad.view(3, 2, -1)
    assert grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0
    assert grad[1].abs().sum() == 0  # no sample of group 1 in the batch: its head is untouched


def test_inference_sums_the_per_group_scores():
    method = di(num_groups=2, num_classes=3)
    model = method.adapt_model(tiny_model())
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([3.0, 0.0, 0.0, 0.0, 0.0, 5.0]))  # head A says 0, head B says 2
        x = torch.randn(6, 1, 2, 2)
        out = method.forward(model, x)
        logp = F.log_softmax(out.group_logits, dim=2)
        assert torch.allclose(out.logits, logp.mean(dim=1), atol=1e-6)
        # same decision as the paper's (and the authors' code's) sum of raw per-group scores
        assert torch.equal(out.logits.argmax(1), out.group_logits.sum(dim=1).argmax(1))
        # and the same probabilities as softmax of the mean logits: the heads' normalisers cancel
        assert torch.allclose(out.logits.softmax(1), out.group_logits.mean(dim=1).softmax(1), atol=1e-6)
    split = hand_split({(0, 0): 3, (1, 2): 3}, class_names=("a", "b", "c"))
    proba = predict_proba(model, method, split, batch_size=4, device=torch.device("cpu"))
    assert proba.shape == (6, 3) and torch.allclose(proba.sum(1), torch.ones(6))
    # the normalised geometric mean of the heads' probabilities
    p = F.softmax(method.forward(model, split.images.float().div(127.5).sub(1)).group_logits, dim=2)
    geo = p.prod(dim=1).sqrt()
    assert torch.allclose(proba, geo / geo.sum(1, keepdim=True), atol=1e-5)


def test_heads_of_groups_without_training_rows_are_left_out():
    split = hand_split({(0, 0): 3, (0, 1): 3}, group_names=("A", "B"))  # no B rows
    method = di(num_groups=2, num_classes=2)
    method.prepare(split)
    model = method.adapt_model(tiny_model(num_classes=2))
    assert model.head.active.tolist() == [1.0, 0.0]
    out = method.forward(model, torch.randn(3, 1, 2, 2))
    assert torch.allclose(out.logits, F.log_softmax(out.group_logits[:, 0], dim=1))


def test_checkpoint_and_fairrun_eval_reproduce_the_training_results(tiny_cfg, tmp_path):
    from fairrun.evaluation.rerun import run_eval

    results = run_training(tiny_cfg("method=domain_independent"), tmp_path / "run")
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=False)
    assert best["model"]["head.weight"].shape[0] == 2 * 2
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        eval_cfg = compose(config_name="eval", overrides=[f"run_dir={tmp_path / 'run'}", "gpu=cpu"])
    again = run_eval(tmp_path / "run", eval_cfg)
    for split in ("val", "test"):
        a = results.set_index("split").loc[split]
        b = again.set_index("split").loc[split]
        assert a["accuracy"] == b["accuracy"] and a["worst_group_acc"] == b["worst_group_acc"]


def test_config_has_no_keys_besides_its_name():
    cfg = validate_run_config(compose_train(["method=domain_independent"]))
    assert cfg.method == DomainIndependentConfig()
    with pytest.raises(ConfigError, match="Unknown key 'method.heads'"):
        validate_run_config(compose_train(["method=domain_independent", "+method.heads=2"]))


# -- evidence ----------------------------------------------------------------------------------------
# None is asserted: on tests/helpers/evidence.py's spurious set-up (the paper's setting, class-domain skew; same
# seeds and budget as ERM) domain_independent's effect is not robust to the CPU kernels. Worst-group
# accuracy, seeds 0-4 (scripts/measure_evidence.py, check domain_independent_spurious; tests/helpers/evidence.py
# names the kernel settings):
#   native  ERM 0.502 0.848 0.500 0.500 0.746 (0.619)  DI 0.514 0.676 0.858 0.502 0.684 (0.647)
#   default ERM 0.510 0.858 0.500 0.500 0.734 (0.620)  DI 0.534 0.548 0.810 0.502 0.612 (0.601)
#   avx2    ERM 0.504 0.840 0.500 0.500 0.662 (0.601)  DI 0.514 0.706 0.806 0.502 0.688 (0.643)
# The 5-seed gain is +0.028 / -0.019 / +0.042 (per-seed SD 0.19). Neither did the selection-rate gap of
# the summed-score inference beat the "own head" inference (each row scored by its group's head) by 3
# standard errors (dp_diff own - summed: mean 0.19 / 0.40 / 0.39, per-seed -0.18 to 0.76). With a weaker
# correlation (0.3) ERM already learns the feature and DI is worse (0.867 -> 0.797); with 0.7, 0.501 ->
# 0.588 (seeds 0-2, one kernel setting).
