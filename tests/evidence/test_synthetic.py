"""Evidence (slow): the tests of test_synthetic.py that train several seeds of a method and of ERM on
tests/helpers/evidence.py's set-ups and assert the method helps without trading accuracy away."""
import dataclasses
import pandas as pd
import torch
from fairrun.data.synthetic import SyntheticConfig, make_synthetic
from tests.helpers.evidence import per_seed
from torch import nn

def _small_cnn() -> nn.Module:
    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.MaxPool2d(2)]

    return nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 64), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(64, 2))


def _erm_group_accuracy(cfg: SyntheticConfig, seed: int = 0, epochs: int = 4) -> list[float]:
    """Train the small CNN on `smiling` by plain ERM (Adam, one-cycle LR); return per-group test accuracy."""
    data = make_synthetic(cfg)

    def inputs(split):
        return (split.images.float() / 255 - 0.5) / 0.25

    x, y = inputs(data["train"]), torch.tensor(data["train"].attributes.smiling.values)
    torch.manual_seed(seed)
    model = _small_cnn()
    optimizer = torch.optim.Adam(model.parameters())
    batches = [i for _ in range(epochs) for i in torch.randperm(len(x)).split(64)]
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=len(batches))
    model.train()
    for idx in batches:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        optimizer.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        correct = model(inputs(data["test"])).argmax(1).numpy() == data["test"].attributes.smiling.values
    groups = data["test"].attributes.group.values
    return [round(float(correct[groups == g].mean()), 3) for g in range(cfg.num_groups)]


def measure_rarity(seed: int) -> dict[str, float]:
    """Per-group test accuracy of ERM (seed ``seed``) with group B 50%, 10% and 2% of training."""
    cfg = SyntheticConfig(n_train=3000, n_val=1, n_test=2000, image_size=32)
    row = {}
    for name, share in (("balanced", 0.5), ("minority", 0.1), ("rare", 0.02)):
        acc = _erm_group_accuracy(dataclasses.replace(cfg, group_proportions=[1 - share, share]), seed=seed)
        row[f"{name}_A"], row[f"{name}_B"] = acc
    return row


def test_erm_serves_a_group_worse_the_rarer_it_is():
    """The key property: the same group is classified worse the rarer it is in training (seeds 0-2,
    means; tests/helpers/evidence.py: how the numbers were measured and the thresholds set).

    Measured (per seed 0, 1, 2, then the mean):
      balanced A  native  0.954 0.975 0.963 (0.964)
                  default 0.951 0.973 0.966 (0.963)
                  avx2    0.954 0.976 0.963 (0.964)
      balanced B  native  0.918 0.962 0.956 (0.945)
                  default 0.927 0.961 0.957 (0.948)
                  avx2    0.924 0.964 0.959 (0.949)
      minority A  native  0.977 0.970 0.975 (0.974)
                  default 0.976 0.971 0.974 (0.974)
                  avx2    0.975 0.971 0.973 (0.973)
      minority B  native  0.761 0.851 0.802 (0.805)
                  default 0.767 0.842 0.802 (0.804)
                  avx2    0.759 0.848 0.797 (0.801)
      rare A      native  0.971 0.975 0.973 (0.973)
                  default 0.971 0.975 0.973 (0.973)
                  avx2    0.970 0.976 0.974 (0.973)
      rare B      native  0.532 0.550 0.505 (0.529)
                  default 0.534 0.530 0.502 (0.522)
                  avx2    0.520 0.548 0.498 (0.522)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      min(balanced A, balanced B) > 0.85 (mean): 0.945 / 0.948 / 0.949, bound 0.922, margin 0.095
      min(minority A, rare A) > 0.9 (mean): 0.971 / 0.972 / 0.971, bound 0.969, margin 0.071
      balanced B - minority B > 0 (mean): 0.141 / 0.145 / 0.148, bound 0.017, margin 0.141
      minority B - rare B > 0.2 (mean): 0.276 / 0.282 / 0.279, bound 0.235, margin 0.076
      balanced B - rare B > 0.25 (mean): 0.416 / 0.426 / 0.427, bound 0.303, margin 0.166
    """
    table = pd.DataFrame([measure_rarity(seed) for seed in (0, 1, 2)])
    numbers, mean = per_seed(table), table.mean()
    assert min(mean["balanced_A"], mean["balanced_B"]) > 0.85, numbers  # both groups are learnable
    assert min(mean["minority_A"], mean["rare_A"]) > 0.9, numbers  # the majority is served well
    assert mean["minority_B"] < mean["balanced_B"], numbers
    assert mean["rare_B"] < mean["minority_B"] - 0.2, numbers
    assert mean["rare_B"] < mean["balanced_B"] - 0.25, numbers
