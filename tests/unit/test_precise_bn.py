"""PreciseBN (fairrun.training.precise_bn): BatchNorm's eval statistics recomputed for the current weights."""
import torch
from torch import nn

from fairrun.training.precise_bn import batchnorm_layers, recompute_batchnorm_statistics


def _batches(n_batches, size, features=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(size, features, generator=generator) * 2 + 5 for _ in range(n_batches)]


def test_statistics_are_the_averages_of_the_batch_statistics():
    """running_mean = mean of the batch means, running_var = mean of the unbiased batch variances, over the
    first max_batches batches; momentum, num_batches_tracked and the training flag are restored."""
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    bn = model[1]
    bn.num_batches_tracked.fill_(17)
    model.eval()
    batches = _batches(6, 32)
    used = recompute_batchnorm_statistics(model, model, batches, max_batches=4)
    assert used == 4
    with torch.no_grad():
        hidden = [model[0](x) for x in batches[:4]]
    expected_mean = torch.stack([h.mean(0) for h in hidden]).mean(0)
    expected_var = torch.stack([h.var(0, unbiased=True) for h in hidden]).mean(0)
    torch.testing.assert_close(bn.running_mean, expected_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var, expected_var, rtol=1e-5, atol=1e-6)
    assert bn.momentum == 0.1 and int(bn.num_batches_tracked) == 17 and not model.training
    assert all(p.grad is None for p in model.parameters())


def test_stale_running_averages_are_replaced_and_the_old_values_do_not_leak_in():
    """Whatever the running averages held before (here: far off), the result depends only on the batches."""
    a = nn.BatchNorm1d(3)
    b = nn.BatchNorm1d(3)
    b.running_mean.fill_(100.0)
    b.running_var.fill_(1e-3)
    batches = _batches(3, 16, seed=1)
    recompute_batchnorm_statistics(a, a, batches, 10)
    recompute_batchnorm_statistics(b, b, batches, 10)
    assert torch.equal(a.running_mean, b.running_mean) and torch.equal(a.running_var, b.running_var)


def test_single_row_batches_are_skipped_and_nothing_measured_leaves_the_statistics_alone():
    bn = nn.BatchNorm1d(3)
    bn.running_mean.fill_(2.0)
    assert recompute_batchnorm_statistics(bn, bn, _batches(3, 1), 5) == 0
    assert torch.equal(bn.running_mean, torch.full((3,), 2.0))
    # one usable batch among single rows
    batches = [*_batches(2, 1), *_batches(1, 8, seed=3)]
    assert recompute_batchnorm_statistics(bn, bn, batches, 5) == 1
    torch.testing.assert_close(bn.running_mean, batches[-1].mean(0))


def test_a_failing_forward_leaves_the_statistics_as_they_were():
    bn = nn.BatchNorm1d(3)
    bn.running_var.fill_(4.0)

    def forward(x):
        raise RuntimeError("boom")

    try:
        recompute_batchnorm_statistics(bn, forward, _batches(2, 8), 5)
    except RuntimeError:
        pass
    assert torch.equal(bn.running_var, torch.full((3,), 4.0)) and bn.momentum == 0.1


def test_models_without_batchnorm_and_precise_bn_0_change_nothing():
    model = nn.Sequential(nn.Linear(3, 3), nn.GroupNorm(1, 3))
    assert batchnorm_layers(model) == []
    assert recompute_batchnorm_statistics(model, model, _batches(2, 8), 5) == 0
    bn = nn.BatchNorm1d(3)
    assert recompute_batchnorm_statistics(bn, bn, _batches(2, 8), 0) == 0
    assert torch.equal(bn.running_mean, torch.zeros(3))


def test_a_trained_run_keeps_the_statistics_of_its_own_weights(tiny_cfg, tmp_path):
    """best.pt holds PreciseBN statistics: recomputing them from the last epoch's batches (the same order
    and sampler, drawn again from their seeds) reproduces the saved buffers exactly; with
    trainer.precise_bn=0 they are PyTorch's running averages, which differ."""
    from fairrun.evaluation.trained import load_trained
    from fairrun.training import run_training
    from fairrun.training.loop import Trainer

    cfg = tiny_cfg("method=resample", "trainer.epochs=1")
    run_training(cfg, tmp_path / "precise")
    run_training(tiny_cfg("method=resample", "trainer.epochs=1", "trainer.precise_bn=0"), tmp_path / "ema")
    precise = load_trained(tmp_path / "precise", torch.device("cpu")).model
    ema = load_trained(tmp_path / "ema", torch.device("cpu")).model
    for a, b in zip(precise.parameters(), ema.parameters()):  # the training stream itself is untouched
        assert torch.equal(a, b)
    trainer = Trainer(cfg, tmp_path / "again")
    trainer.model.load_state_dict(precise.state_dict())
    for layer in batchnorm_layers(trainer.model):
        layer.running_mean.fill_(9.0)
    assert trainer.refresh_batchnorm() > 0
    for mine, saved, trained in zip(batchnorm_layers(trainer.model), batchnorm_layers(precise),
                                    batchnorm_layers(ema)):
        assert torch.equal(mine.running_mean, saved.running_mean)
        assert torch.equal(mine.running_var, saved.running_var)
        assert not torch.equal(saved.running_mean, trained.running_mean)
