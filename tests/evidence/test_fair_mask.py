"""Evidence (slow): the tests of test_fair_mask.py that train several seeds of a method and of ERM on
tests/helpers/evidence.py's set-ups and assert the method helps without trading accuracy away."""
import numpy as np
import pandas as pd
import pytest
import torch
from fairrun import rundir
from fairrun.config import load_run_config
from fairrun.data.batches import to_float
from fairrun.data.registry import load_dataset
from fairrun.methods import build_method
from fairrun.methods.fair_mask import FairMask, FairMaskConfig, choose_units
from fairrun.models import build_model
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tests.helpers.evidence import SEEDS, per_seed, results
from tests.integration.test_fair_mask import BALANCED, FAIR_MASK, TOP_KS

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
    """Default fair_mask runs, seeds 0-4 (tests/helpers/evidence.py: how the numbers were measured and the
    thresholds set). Masking 4 of 32 units removes only part of what the latent encodes: the group stays
    far above chance (0.5) decodable. Asserted, on 5-seed means: masking the top 4 units by the logreg
    score lowers decodability; the default corr score's top 4 does not raise it (its drop, 0.020-0.048
    on average, is not 3 standard errors above 0); they cost less than 0.12 (corr) and 0.15 (logreg: seed 2
    lost 0.23 under the default kernels) of accuracy. Masking the top 8 lowers decodability more (corr:
    0.07-0.13) but costs up to 0.36 of accuracy on a seed, so it is not asserted; masking 16 left seed 0's model at chance. Seed 3's model did not learn the task under any kernel
    setting (accuracy ~0.5).

    Measured (per seed 0, 1, 2, 3, 4, then the mean):
      decodability unmasked  native  0.984 0.958 0.974 0.986 0.988 (0.978)
                             default 0.931 0.964 0.994 0.994 0.948 (0.966)
                             avx2    0.978 0.841 0.984 0.996 0.980 (0.956)
      decod. corr top 4      native  0.956 0.819 0.966 0.952 0.959 (0.930)
                             default 0.863 0.903 0.994 0.962 0.924 (0.929)
                             avx2    0.931 0.811 0.970 0.992 0.976 (0.936)
      decod. logreg top 4    native  0.944 0.890 0.916 0.946 0.924 (0.924)
                             default 0.817 0.872 0.946 0.939 0.928 (0.900)
                             avx2    0.905 0.749 0.913 0.978 0.962 (0.902)
      decod. corr top 8      native  0.874 0.728 0.883 0.918 0.862 (0.853)
                             default 0.783 0.907 0.988 0.910 0.900 (0.897)
                             avx2    0.811 0.755 0.900 0.956 0.953 (0.875)
      accuracy unmasked      native  0.939 0.963 0.945 0.509 0.935 (0.858)
                             default 0.953 0.963 0.934 0.506 0.938 (0.859)
                             avx2    0.930 0.965 0.935 0.503 0.951 (0.857)
      acc. corr top 4        native  0.941 0.968 0.960 0.518 0.925 (0.862)
                             default 0.950 0.956 0.935 0.498 0.790 (0.826)
                             avx2    0.874 0.961 0.937 0.506 0.891 (0.834)
      acc. logreg top 4      native  0.937 0.963 0.956 0.498 0.931 (0.857)
                             default 0.937 0.906 0.703 0.495 0.932 (0.795)
                             avx2    0.924 0.898 0.908 0.514 0.944 (0.838)
      acc. corr top 8        native  0.910 0.967 0.957 0.507 0.924 (0.853)
                             default 0.825 0.824 0.894 0.514 0.598 (0.731)
                             avx2    0.749 0.796 0.937 0.508 0.596 (0.717)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      decod. drop, logreg top 4 > 0.01 (mean): 0.054 / 0.066 / 0.054, bound 0.020, margin 0.044
      decod. drop, corr top 4 > -0.02 (mean): 0.048 / 0.037 / 0.020, bound -0.012, margin 0.040
      accuracy unmasked > 0.6 (mean): 0.858 / 0.859 / 0.857, bound 0.613, margin 0.257
      acc. corr top 4 - unmasked > -0.12 (mean): 0.004 / -0.033 / -0.023, bound -0.074, margin 0.087
      acc. logreg top 4 - unmasked > -0.15 (mean): -0.001 / -0.064 / -0.019, bound -0.109, margin 0.086
    """
    table = pd.DataFrame([measure_masking(seed) for seed in SEEDS])
    numbers, mean = per_seed(table), table.mean()
    print("\n" + table.round(3).to_string())
    drop = {k: mean["decod_unmasked"] - mean[f"decod_{k}"] for k in ("corr4", "logreg4")}
    assert drop["logreg4"] > 0.01, (drop, numbers)
    assert drop["corr4"] > -0.02, (drop, numbers)
    assert mean["acc_unmasked"] > 0.6, numbers  # the bottleneck model learnt the task
    for k, cost in (("corr4", 0.12), ("logreg4", 0.15)):
        assert mean[f"acc_{k}"] > mean["acc_unmasked"] - cost, (k, numbers)
