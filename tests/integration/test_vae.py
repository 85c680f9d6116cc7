"""fairrun vae train / vae minority: the ConvVAE and its loss, training stage files, caching and resume,
latent densities and DB-VAE weights on hand examples, the enrichment table, the CLI bodies, and the
evidence that the VAE's rarest images are enriched for the rare group."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from fairrun import rundir
from fairrun.data.registry import validate_dataset_section
from fairrun.core.sections import ImbalanceConfig
from fairrun.data.base import LabeledSplit
from fairrun.data.batches import to_float
from fairrun.core.errors import ConfigError
from fairrun.generative.density import (bin_index, debias_weights, effective_sample_size, find_minority,
                                        latent_density)
from fairrun.generative.minority import enrichment_table, run_vae_minority
from fairrun.generative.vae import (ConvVAE, VaeConfig, build_vae, encode_means, load_train_split, load_vae,
                                    run_vae_train, train_vae, vae_loss)

CPU = torch.device("cpu")


def synthetic_train(n=300, size=16, imbalance=None, seed=0, **keys) -> LabeledSplit:
    dataset = validate_dataset_section(OmegaConf.create(
        {"name": "synthetic", "n_train": n, "n_val": 10, "n_test": 10, "image_size": size, **keys}))
    return load_train_split(dataset, imbalance or ImbalanceConfig(), seed)[0]


def compose_vae(config_name: str, overrides: list[str]):
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


# -- the model and its loss --------------------------------------------------------------------------

def test_vae_loss_matches_a_hand_computation():
    x = torch.tensor([[[[0.5, -1.0], [0.0, 1.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])  # (2, 1, 2, 2)
    recon = torch.tensor([[[[0.0, -1.0], [0.5, 1.0]]], [[[1.0, 0.0], [0.0, -0.5]]]])
    mu = torch.tensor([[1.0, 0.0], [0.0, -2.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # squared errors: image 1: 0.25 + 0 + 0.25 + 0 = 0.5; image 2: 1 + 0.25 = 1.25 -> mean 0.875
    # KL = ½ Σ (mu² + σ² - 1 - log σ²): image 1: ½[(1+1-1-0) + (0+2-1-ln 2)] = ½(2 - ln 2); image 2: ½·4 = 2
    kl = (0.5 * (2 - math.log(2.0)) + 2.0) / 2
    total, rec, kl_term = vae_loss(x, recon, mu, logvar, beta=3.0)
    assert rec.item() == pytest.approx(0.875)
    assert kl_term.item() == pytest.approx(kl)
    assert total.item() == pytest.approx(0.875 + 3.0 * kl)


@pytest.mark.parametrize("channels, size", [(3, 16), (1, 32), (3, 24)])
def test_conv_vae_shapes_and_range(channels, size):
    torch.manual_seed(0)
    vae = ConvVAE(channels, size, latent_dim=5, width=4)
    x = torch.rand(3, channels, size, size) * 2 - 1
    recon, mu, logvar = vae(x)
    assert recon.shape == x.shape and mu.shape == (3, 5) and logvar.shape == (3, 5)
    assert recon.min() >= -1 and recon.max() <= 1
    assert vae.decode(torch.zeros(2, 5)).shape == (2, channels, size, size)


def test_reconstruction_error_drops_with_training(tmp_path):
    split = synthetic_train(300, 16)
    cfg = VaeConfig(latent_dim=8, width=16, epochs=2, batch_size=32, lr=3e-3)
    x = to_float(split.images, CPU)

    def error(vae):
        with torch.no_grad():
            return (vae.reconstruct(x) - x).pow(2).flatten(1).sum(1).mean().item()

    before = error(build_vae(cfg, split.images.shape[1:]))
    vae, _, meta = load_vae(train_vae(split, cfg, tmp_path, CPU))
    after = error(vae)
    print(f"reconstruction error (summed squared error per image): {before:.1f} -> {after:.1f}")
    assert after < 0.9 * before  # measured 249.7 -> 207.5
    assert meta["history"][1]["recon"] < meta["history"][0]["recon"]


# -- the training stage ------------------------------------------------------------------------------

def test_train_vae_writes_its_files_and_a_second_call_skips_training(tmp_path):
    split = synthetic_train(300, 16)
    cfg = VaeConfig(latent_dim=4, width=4, epochs=2, batch_size=64)
    path = train_vae(split, cfg, tmp_path, CPU, data={"note": "test"})
    assert path == tmp_path / "vae.pt"
    for name in ("checkpoints/last.pt", "recon/epoch_001.png", "recon/epoch_002.png"):
        assert (tmp_path / name).is_file(), name
    assert any((tmp_path / "tb").iterdir())
    vae, loaded_cfg, meta = load_vae(tmp_path)
    assert loaded_cfg == cfg and meta["image_shape"] == [3, 16, 16] and meta["data"] == {"note": "test"}
    assert meta["group_names"] == split.group_names and meta["class_names"] == split.class_names
    mu = encode_means(vae, split, CPU, batch_size=70)
    assert mu.shape == (300, 4) and mu.dtype == torch.float32
    stamps = {p: p.stat().st_mtime_ns for p in (path, tmp_path / rundir.LAST)}
    assert train_vae(split, cfg, tmp_path, CPU, data={"note": "test"}) == path  # cached: nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    with pytest.raises(ConfigError, match="different configuration"):
        train_vae(split, VaeConfig(latent_dim=4, width=4, epochs=2, batch_size=64, beta=2.0), tmp_path, CPU,
                  data={"note": "test"})
    train_vae(split, VaeConfig(latent_dim=4, width=4, epochs=1, batch_size=64, beta=2.0), tmp_path, CPU,
              resume=False)  # starts over
    assert load_vae(tmp_path)[1].beta == 2.0 and not (tmp_path / "recon" / "epoch_002.png").exists()


def test_extending_training_from_last_pt_equals_training_straight_through(tmp_path):
    split = synthetic_train(200, 16)
    short = VaeConfig(latent_dim=4, width=4, epochs=1, batch_size=64, seed=3)
    long = VaeConfig(latent_dim=4, width=4, epochs=3, batch_size=64, seed=3)
    train_vae(split, short, tmp_path / "resumed", CPU)
    train_vae(split, long, tmp_path / "resumed", CPU)  # resumes from last.pt (epochs is not fingerprinted)
    train_vae(split, long, tmp_path / "straight", CPU)
    a, b = (rundir.load_checkpoint(tmp_path / d / "vae.pt") for d in ("resumed", "straight"))
    assert [h["epoch"] for h in a["history"]] == [1, 2, 3]
    assert a["history"] == b["history"]
    for key in b["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    with pytest.raises(ConfigError, match="vae.epochs"):
        train_vae(split, short, tmp_path / "resumed", CPU)


# -- latent density and DB-VAE weights ---------------------------------------------------------------

def cluster_with_outliers():
    """1-D latents: 20 rows in [0, 0.09] (bin 0 of 10 over [0, 1]), outliers at 0.55 and 1.0."""
    return np.concatenate([np.linspace(0.0, 0.09, 20), [0.55, 1.0]])[:, None]


def test_density_and_weights_of_a_cluster_with_outliers():
    mu = cluster_with_outliers()
    assert bin_index(mu, 10)[:, 0].tolist() == [0] * 20 + [5, 9]
    density = latent_density(mu, bins=10, smoothing=0.0)
    np.testing.assert_allclose(density, np.log([20 / 22] * 20 + [1 / 22] * 2))
    smoothed = latent_density(mu, bins=10, smoothing=0.01)  # (p + 0.01) / (1 + 10 · 0.01)
    np.testing.assert_allclose(smoothed[[0, 20]], np.log([(20 / 22 + 0.01) / 1.1, (1 / 22 + 0.01) / 1.1]))
    # alpha = 0: w ∝ 1/p -> cluster rows 1.1 each (22 in all), outliers 22 each: 1.1/66 and 1/3
    w = debias_weights(mu, bins=10, alpha=0.0)
    np.testing.assert_allclose(w, [1.1 / 66] * 20 + [1 / 3] * 2)
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(debias_weights(mu, bins=10, alpha=0.0, combine="max"), w)  # one dimension
    for alpha in (0.001, 0.1, 1.0):
        for combine in ("product", "max"):
            weights = debias_weights(mu, 10, alpha, combine)
            assert weights.sum() == pytest.approx(1.0) and weights[20:].min() > weights[:20].max()
    near_uniform = debias_weights(mu, 10, alpha=1e6)
    assert near_uniform.max() / near_uniform.min() < 1 + 1e-5
    assert effective_sample_size(near_uniform) == pytest.approx(22, rel=1e-6)
    assert effective_sample_size(w) < 5


def product_versus_max_example():
    """Ten rows, three latent dimensions, two bins each (low 0 / high 1). Bin shares (high bin in brackets):
    dim 1 high {0, 2, 3} (0.3), dim 2 high {0, 4, 5} (0.3), dim 3 high {1, 6} (0.2).
    Row 0: 0.3 · 0.3 · 0.8 = 0.072 (min 0.3); rows 1, 6: 0.7 · 0.7 · 0.2 = 0.098 (min 0.2)."""
    mu = np.zeros((10, 3))
    mu[[0, 2, 3], 0] = 1
    mu[[0, 4, 5], 1] = 1
    mu[[1, 6], 2] = 1
    return mu


def test_product_and_max_rank_rows_differently_as_documented():
    mu = product_versus_max_example()
    product = latent_density(mu, bins=2, smoothing=0.0, combine="product")
    rarest_dim = latent_density(mu, bins=2, smoothing=0.0, combine="max")
    np.testing.assert_allclose(np.exp(product[[0, 1, 2, 7]]), [0.072, 0.098, 0.168, 0.392])
    np.testing.assert_allclose(np.exp(rarest_dim[[0, 1, 2, 7]]), [0.3, 0.2, 0.3, 0.7])
    assert find_minority(mu, 0.1, bins=2, smoothing=0.0, combine="product").tolist() == [0]  # many rare dims
    assert find_minority(mu, 0.2, bins=2, smoothing=0.0, combine="max").tolist() == [1, 6]  # one rare dim
    w_product = debias_weights(mu, bins=2, alpha=0.0, combine="product")  # ∝ 1 / Π_d p_d
    expected = 1 / np.array([0.072, 0.098, 0.168, 0.168, 0.168, 0.168, 0.098, 0.392, 0.392, 0.392])
    np.testing.assert_allclose(w_product, expected / expected.sum())
    # max: per dimension u_d = (1/p_d) / Σ_rows 1/p_d
    # dims 1, 2: high bin 1/6, low bin 1/14; dim 3: high bin 1/4, low bin 1/16
    w_max = debias_weights(mu, bins=2, alpha=0.0, combine="max")
    expected = np.array([1 / 6, 1 / 4, 1 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 4, 1 / 14, 1 / 14, 1 / 14])
    np.testing.assert_allclose(w_max, expected / expected.sum())


def test_find_minority_returns_the_right_count_rarest_first():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(200, 4))
    for fraction, count in ((0.05, 10), (0.001, 1), (1.0, 200), (0.123, 25)):
        index = find_minority(mu, fraction)
        assert len(index) == count and len(set(index.tolist())) == count
    density = latent_density(mu)
    index = find_minority(mu, 0.05)
    assert np.all(np.diff(density[index]) >= 0) and density[index].max() <= np.sort(density)[9]
    assert find_minority(cluster_with_outliers(), 2 / 22, bins=10).tolist() == [20, 21]
    with pytest.raises(ValueError, match="fraction"):
        find_minority(mu, 0.0)


# -- the enrichment table ----------------------------------------------------------------------------

def test_enrichment_table_on_a_hand_example():
    # 10 rows: group A rows 0-7 (labels 0,1 alternating), group B rows 8, 9 (labels 0, 1)
    split = LabeledSplit(name="train", images=torch.zeros(10, 1, 4, 4, dtype=torch.uint8),
                         y=torch.tensor([0, 1] * 5), g=torch.tensor([0] * 8 + [1] * 2),
                         group_names=["A", "B"], class_names=["no", "yes"])
    table = enrichment_table(split, [8, 9, 1, 3]).set_index(["kind", "group", "label"])
    b = table.loc[("group", "B", "all")]
    assert b.n_minority == 2 and b.minority_share == 0.5 and b.n_train == 2 and b.train_share == 0.2
    assert b.enrichment == pytest.approx(2.5)
    a = table.loc[("group", "A", "all")]
    assert (a.n_minority, a.enrichment) == (2, pytest.approx(0.5 / 0.8))
    yes = table.loc[("label", "all", "yes")]
    assert (yes.n_minority, yes.minority_share, yes.train_share) == (3, 0.75, 0.5)
    assert yes.enrichment == pytest.approx(1.5)
    cell = table.loc[("group_label", "A", "no")]
    assert (cell.n_minority, cell.n_train, cell.enrichment) == (0, 4, 0.0)
    assert table.loc[("group_label", "B", "yes")].enrichment == pytest.approx((1 / 4) / (1 / 10))
    assert len(table) == 2 + 2 + 4


# -- the CLI bodies ----------------------------------------------------------------------------------

SMALL_DATA = ["dataset.n_train=400", "dataset.n_val=10", "dataset.n_test=10", "dataset.image_size=16",
              "dataset.group_proportions=[0.5,0.5]", "imbalance.ratio=0.9", "imbalance.size=200", "gpu=cpu"]


def test_vae_train_then_minority_through_the_config_bodies(tmp_path, capsys):
    out = tmp_path / "vae"
    cfg = compose_vae("vae", [*SMALL_DATA, "vae.epochs=1", "vae.latent_dim=4", "vae.width=8",
                              f"out_dir={out}"])
    assert run_vae_train(cfg) == out / "vae.pt"
    assert "fairrun vae minority run_dir=" in capsys.readouterr().out
    meta = load_vae(out)[2]
    assert meta["data"]["dataset"]["n_train"] == 400 and meta["data"]["imbalance"]["ratio"] == 0.9
    csv = run_vae_minority(compose_vae("vae_minority", [f"run_dir={out}", "fraction=0.1", "combine=max",
                                                        "gpu=cpu"]))
    printed = capsys.readouterr().out
    assert "enrichment" in printed and "group_label" in printed
    frame = pd.read_csv(csv)
    assert len(frame) == 20 and frame["rank"].tolist() == list(range(1, 21))
    assert list(frame.columns) == ["rank", "row", "log_density", "group", "label", "source_row"]
    assert frame["log_density"].is_monotonic_increasing
    # source_row points into the dataset's training split before the imbalance sampling
    full = synthetic_train(400, 16, group_proportions=[0.5, 0.5])
    assert [full.group_names[int(k)] for k in full.g[frame.source_row.tolist()]] == frame.group.tolist()
    assert [full.class_names[int(c)] for c in full.y[frame.source_row.tolist()]] == frame.label.tolist()
    enrichment = pd.read_csv(out / "minority_enrichment.csv")
    assert enrichment.n_minority[enrichment.kind == "group"].sum() == 20
    assert (out / "minority_grid.png").stat().st_size > 0


@pytest.mark.parametrize("overrides, key", [
    (["vae.latent_dim=0"], "vae.latent_dim"),
    (["vae.beta=-1"], "vae.beta"),
    (["+vae.depth=3"], "vae.depth"),
    (["vae.lr=0"], "vae.lr"),
])
def test_vae_train_config_errors_name_the_key(tmp_path, overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run_vae_train(compose_vae("vae", ["gpu=cpu", f"out_dir={tmp_path}", *overrides]))


@pytest.mark.parametrize("overrides, key", [([], "run_dir=PATH"), (["fraction=0"], "'fraction'"),
                                            (["combine=mean"], "'combine'"), (["bins=0"], "'bins'"),
                                            (["+top=1"], "'top'")])
def test_vae_minority_config_errors(tmp_path, overrides, key):
    extra = [] if not overrides else [f"run_dir={tmp_path}"]
    with pytest.raises(ConfigError, match=key):
        run_vae_minority(compose_vae("vae_minority", [*extra, *overrides]))


def test_a_wrongly_typed_key_fails_when_the_config_is_composed():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="bins"):
        compose_vae("vae_minority", ["run_dir=x", "bins=many"])


def test_yaml_defaults_match_the_config_dataclass():
    cfg = compose_vae("vae", [])
    assert VaeConfig(**OmegaConf.to_container(cfg.vae)) == VaeConfig()
    assert compose_vae("vae_minority", ["run_dir=x"]).combine == "product"
