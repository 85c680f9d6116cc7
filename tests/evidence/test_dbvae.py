"""Evidence (slow): the tests of test_dbvae.py that train several seeds of a method and of ERM on
tests/helpers/evidence.py's set-ups and assert the method helps without trading accuracy away."""
import pandas as pd
from tests.helpers.evidence import SEEDS, per_seed, split_rows
from tests.integration.test_dbvae import EVIDENCE_16PX

def test_dbvae_moves_sampling_mass_to_the_rare_group():
    """Test rows, seeds 0-4 (tests/helpers/evidence.py: how the numbers were measured and the thresholds set).
    The worst-group gain is not asserted: its 5-seed mean is 0.03-0.04 under every kernel setting (0.05-0.07
    with BatchNorm's running averages, before PreciseBN), but 3 standard errors of it reach below 0 (group-oracle method=resample on the same set-up, seeds 0-2,
    one kernel setting: worst-group 0.514, accuracy 0.561).

    Measured (per seed 0, 1, 2, 3, 4, then the mean):
      DB-VAE mass of B    native  0.102 0.082 0.100 0.098 0.077 (0.092)
                          default 0.086 0.090 0.098 0.102 0.084 (0.092)
                          avx2    0.102 0.094 0.094 0.093 0.085 (0.093)
      accuracy ERM        native  0.652 0.652 0.661 0.663 0.599 (0.645)
                          default 0.648 0.666 0.662 0.663 0.627 (0.653)
                          avx2    0.652 0.669 0.661 0.663 0.596 (0.648)
      accuracy DB-VAE     native  0.633 0.641 0.674 0.659 0.607 (0.643)
                          default 0.643 0.620 0.681 0.637 0.629 (0.642)
                          avx2    0.645 0.658 0.644 0.655 0.626 (0.646)
      worst-group ERM     native  0.434 0.422 0.412 0.410 0.392 (0.414)
                          default 0.434 0.424 0.416 0.408 0.426 (0.422)
                          avx2    0.434 0.426 0.414 0.408 0.388 (0.414)
      worst-group DB-VAE  native  0.500 0.444 0.424 0.456 0.434 (0.452)
                          default 0.484 0.414 0.440 0.442 0.486 (0.453)
                          avx2    0.418 0.456 0.416 0.458 0.460 (0.442)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      mass of B (3 x its 0.02 share) > 0.06 (each seed): lowest 0.077, bound 0.068, margin 0.018
      accuracy DB-VAE - ERM > -0.07 (mean): -0.003 / -0.011 / -0.003, bound -0.031, margin 0.059
    """
    dbvae = split_rows(["method=dbvae"], seeds=SEEDS, extra=EVIDENCE_16PX)
    erm = split_rows([], seeds=SEEDS, extra=EVIDENCE_16PX)
    share = 30 / 1500
    numbers = per_seed(pd.DataFrame({
        "mass[B]": dbvae["dbvae_mass[B]"], "acc_erm": erm["accuracy"], "acc_dbvae": dbvae["accuracy"],
        "wga_erm": erm["worst_group_acc"], "wga_dbvae": dbvae["worst_group_acc"]}))
    print(numbers)
    assert (dbvae["dbvae_mass[B]"] > 3 * share).all(), numbers
    assert dbvae["accuracy"].mean() > erm["accuracy"].mean() - 0.07, numbers  # no collapse of the classifier
