"""Evidence (slow): the tests of test_dbvae.py that train several seeds of a method and of ERM on
tests/helpers/evidence.py's set-ups and assert the method helps without trading accuracy away."""
import pandas as pd
from tests.helpers.evidence import SEEDS, per_seed, split_rows
from tests.integration.test_dbvae import EVIDENCE_16PX

def test_dbvae_moves_sampling_mass_to_the_rare_group():
    """Test rows, seeds 0-4 (tests/helpers/evidence.py: how the numbers were measured and the thresholds set).
    The worst-group gain is not asserted: its 5-seed mean is 0.05-0.07 under every kernel setting, but
    3 standard errors of it reach below 0 (group-oracle method=resample on the same set-up, seeds 0-2,
    one kernel setting: worst-group 0.514, accuracy 0.561).

    Measured (per seed 0, 1, 2, 3, 4, then the mean):
      DB-VAE mass of B    native  0.102 0.082 0.100 0.098 0.077 (0.092)
                          default 0.086 0.090 0.098 0.102 0.084 (0.092)
                          avx2    0.102 0.094 0.094 0.093 0.085 (0.093)
      accuracy ERM        native  0.623 0.661 0.613 0.665 0.551 (0.623)
                          default 0.628 0.654 0.613 0.660 0.549 (0.621)
                          avx2    0.627 0.658 0.612 0.662 0.554 (0.623)
      accuracy DB-VAE     native  0.649 0.665 0.674 0.587 0.590 (0.633)
                          default 0.649 0.627 0.673 0.635 0.567 (0.630)
                          avx2    0.637 0.650 0.659 0.565 0.565 (0.615)
      worst-group ERM     native  0.478 0.440 0.302 0.418 0.382 (0.404)
                          default 0.478 0.428 0.306 0.408 0.388 (0.402)
                          avx2    0.478 0.434 0.302 0.410 0.392 (0.403)
      worst-group DB-VAE  native  0.492 0.474 0.428 0.490 0.490 (0.475)
                          default 0.514 0.440 0.432 0.430 0.500 (0.463)
                          avx2    0.502 0.452 0.466 0.426 0.432 (0.456)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      mass of B (3 x its 0.02 share) > 0.06 (each seed): lowest 0.077, bound 0.068, margin 0.018
      accuracy DB-VAE - ERM > -0.07 (mean): 0.010 / 0.009 / -0.007, bound -0.057, margin 0.063
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
