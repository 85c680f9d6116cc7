"""Evidence (slow): the tests of test_vae.py that train several seeds of a method and of ERM on
tests/helpers/evidence.py's set-ups and assert the method helps without trading accuracy away."""
import numpy as np
from fairrun.core.sections import ImbalanceConfig
from fairrun.generative.density import find_minority
from fairrun.generative.minority import enrichment_table
from fairrun.generative.vae import VaeConfig, encode_means, load_vae, train_vae
from pathlib import Path
from tests.integration.test_vae import CPU, synthetic_train

# -- evidence ----------------------------------------------------------------------------------------
def measure_enrichment(seed: int, workdir: Path) -> dict[str, float]:
    """Group B's enrichment among the 5% rarest latents of one VAE (seed ``seed``) trained in ``workdir``:
    tests/helpers/evidence.py's rare-group training set at 16 px (1,500 synthetic faces, group B = 30 of them, 2%),
    a VAE that never sees a group label (latent_dim 8, width 16, 10 epochs, ~4 s), the 75 rarest images
    (product density)."""
    split = synthetic_train(3000, 16, ImbalanceConfig(ratio=0.98, size=1500), group_proportions=[0.5, 0.5])
    assert int((split.g == 1).sum()) == 30
    cfg = VaeConfig(latent_dim=8, width=16, epochs=10, batch_size=64, lr=3e-3, seed=seed)
    path = train_vae(split, cfg, Path(workdir) / f"vae-{seed}", CPU)
    vae, _, _ = load_vae(path)
    index = find_minority(encode_means(vae, split, CPU), fraction=0.05, bins=10, smoothing=0.001)
    table = enrichment_table(split, index).set_index(["kind", "group"])
    return {"enrichment_B": float(table.loc[("group", "B"), "enrichment"])}


def test_vae_minority_is_enriched_for_the_rare_group(tmp_path):
    """B's share among the rarest latents against its 2% share of training, for VAE seeds 0-2, each
    (tests/helpers/evidence.py: how the numbers were measured and the thresholds set).

    Measured (per seed 0, 1, 2, then the mean):
      enrichment of B  native  13.3 18.7 12.7 (14.889)
                       default 13.3 18.7 12.7 (14.889)
                       avx2    14.0 18.7 12.0 (14.889)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      enrichment > 3 (each seed): lowest 9.333, bound 4.331, margin 6.333
    """
    factors = [measure_enrichment(seed, tmp_path)["enrichment_B"] for seed in (0, 1, 2)]
    print(f"enrichment of group B among the 5% rarest latents (seeds 0-2): {[round(f, 1) for f in factors]}, "
          f"mean {np.mean(factors):.1f}x")
    assert min(factors) > 3.0, factors
