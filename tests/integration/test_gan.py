"""fairrun.generative: the generator file format (export/load), the built-in GAN (training, cache, resume)."""
from __future__ import annotations


import pytest
import torch
from torch import nn

from fairrun.core.validation import typed_section
from fairrun.data.registry import SyntheticDatasetConfig, load_dataset
from fairrun.core.errors import ConfigError, FairrunError
from fairrun.generative import gan as gan_module
from fairrun.generative.gan import (GanConfig, Generator, build_networks, run_gan_train, select_images,
                                    train_gan)
from fairrun.generative.generators import (LoadedGenerator, export_generator, load_generator, read_metadata,
                                           sample_latents)
from fairrun.generative.grids import pair_grid, save_grid

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # the tests trace and save too
CPU = torch.device("cpu")
# 16 px, 8 channels at full size: a few hundred images train in well under a second per epoch
TINY = dict(latent_dim=16, width=8, batch_size=32, epochs=1, seed=0)


@pytest.fixture(scope="module")
def split():
    """200 synthetic 16 px training images, both groups equally frequent."""
    cfg = SyntheticDatasetConfig(image_size=16, n_train=200, n_val=10, n_test=10,
                                 group_proportions=[0.5, 0.5])
    return load_dataset(cfg)["train"]


def tiny_generator(latent_dim=8, size=16) -> Generator:
    torch.manual_seed(0)
    return Generator(latent_dim, size, 3, width=4).eval()


# -- 1. export / load round trip -------------------------------------------------------------------------

def test_export_load_round_trip(tmp_path):
    module = tiny_generator()
    path = export_generator(module, tmp_path / "g" / "generator.pt", latent_dim=8, image_size=16, channels=3,
                            source="test", extra={"epochs": 3})
    assert path.is_file() and not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    loaded = load_generator(path)
    assert isinstance(loaded, LoadedGenerator)
    assert (loaded.latent_dim, loaded.image_size, loaded.channels, loaded.resized) == (8, 16, 3, False)
    assert loaded.metadata == {"latent_dim": 8, "image_size": 16, "channels": 3, "output_range": [-1, 1],
                               "source": "test", "epochs": 3}
    assert read_metadata(path) == loaded.metadata
    z = sample_latents(10, 8, seed=3)
    assert torch.equal(z, sample_latents(10, 8, seed=3)) and not torch.equal(z, sample_latents(10, 8, seed=4))
    with torch.no_grad():
        expected = module(z)
    images = loaded.generate(z)
    assert images.dtype == torch.float32 and images.shape == (10, 3, 16, 16) and images.device.type == "cpu"
    assert torch.equal(images, expected)
    torch.testing.assert_close(loaded.generate(z, batch_size=3), expected)  # batched (up to float rounding)
    as_uint8 = loaded.generate_uint8(z)
    assert as_uint8.dtype == torch.uint8 and as_uint8.shape == (10, 3, 16, 16)
    assert torch.equal(as_uint8, ((expected + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
    assert int(as_uint8.max()) <= 255 and as_uint8.float().std() > 0
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        loaded.generate(torch.zeros(2, 5))


class Unscriptable(nn.Module):
    """A generator TorchScript cannot compile (starred call arguments): exported by tracing instead."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3 * 8 * 8)
        self.shape = (3, 8, 8)

    def forward(self, z):
        return torch.tanh(self.linear(z)).reshape(-1, *self.shape)


def test_export_falls_back_to_tracing(tmp_path):
    module = Unscriptable().eval()
    path = export_generator(module, tmp_path / "traced.pt", latent_dim=4, image_size=8, channels=3)
    loaded = load_generator(path)
    z = sample_latents(5, 4, seed=0)
    with torch.no_grad():
        assert torch.equal(loaded.generate(z), module(z))
    assert loaded.metadata["source"] == "fairrun dcgan"


# -- 2. external generators, and the errors ----------------------------------------------------------------

class Toy(nn.Module):
    """An 'external' generator: z (N, 5) -> (N, 3, 8, 8) images in [-1, 1]; ``flat`` returns (N, 192)."""

    def __init__(self, flat: bool = False):
        super().__init__()
        torch.manual_seed(1)
        self.linear = nn.Linear(5, 3 * 8 * 8)
        self.flat = flat

    def forward(self, z):
        x = torch.tanh(self.linear(z))
        return x if self.flat else x.view(z.shape[0], 3, 8, 8)


def save_external(module: nn.Module, path):
    torch.jit.save(torch.jit.trace(module.eval(), torch.randn(1, 5)), str(path))  # no fairrun metadata
    return path


def test_external_generator_without_metadata(tmp_path):
    path = save_external(Toy(), tmp_path / "external.pt")
    with pytest.raises(FairrunError, match="gan.latent_dim") as err:
        load_generator(path)
    assert "no fairrun metadata" in str(err.value) and "Generators" in str(err.value)
    z = sample_latents(6, 5, seed=0)
    native = load_generator(path, latent_dim=5, image_size=8)
    assert native.metadata is None and not native.resized and native.image_size == 8
    with torch.no_grad():
        assert torch.equal(native.generate(z), Toy()(z))
    resized = load_generator(path, latent_dim=5, image_size=16)  # an 8 px generator used at 16 px
    assert resized.resized and (resized.native_size, resized.image_size) == (8, 16)
    images = resized.generate(z)
    assert images.shape == (6, 3, 16, 16) and images.min() >= -1 and images.max() <= 1
    expected = torch.nn.functional.interpolate(native.generate(z), size=(16, 16), mode="bilinear",
                                               align_corners=False)
    torch.testing.assert_close(images, expected)
    assert resized.generate_uint8(z).shape == (6, 3, 16, 16)
    assert load_generator(path, latent_dim=5).image_size == 8  # no image_size: the generator's own
    with pytest.raises(FairrunError, match=r"latents of shape \(2, 7\) failed.*gan.latent_dim"):
        load_generator(path, latent_dim=7, image_size=8)


def test_generator_file_errors(tmp_path):
    with pytest.raises(FairrunError, match="does not exist.*TorchScript.*docs/generative.md, section 'Generators'"):
        load_generator(tmp_path / "missing.pt", latent_dim=5, image_size=8)
    torch.save(Toy().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(FairrunError, match="is not a TorchScript file.*state_dict"):
        load_generator(tmp_path / "weights.pt", latent_dim=5, image_size=8)
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(FairrunError, match="is not a TorchScript file"):
        load_generator(tmp_path / "notes.txt", latent_dim=5, image_size=8)
    flat = save_external(Toy(flat=True), tmp_path / "flat.pt")
    with pytest.raises(FairrunError, match=r"returned \(2, 192\).*square images"):
        load_generator(flat, latent_dim=5, image_size=8)


def test_grids(tmp_path):
    from PIL import Image

    images = torch.rand(10, 3, 16, 16) * 2 - 1
    path = save_grid(images, tmp_path / "grid.png", nrow=5)
    assert Image.open(path).size == (5 * 18 + 2, 2 * 18 + 2)  # 2 px padding
    as_uint8 = (images[:3] + 1).mul(127.5).to(torch.uint8)
    assert save_grid(as_uint8, tmp_path / "u8.png", title="uint8").is_file()
    pairs = pair_grid(images[:4], images[4:8], tmp_path / "pairs.png")
    assert pairs.is_file() and Image.open(pairs).size[1] > Image.open(pairs).size[0]  # 4 rows of 2
    with pytest.raises(ValueError, match="same shape"):
        pair_grid(images[:4], images[:3], tmp_path / "bad.png")


# -- 3. training: outputs, cache, resume --------------------------------------------------------------------

def outputs(path, n=8):
    return load_generator(path).generate(sample_latents(n, TINY["latent_dim"], seed=9))


def test_train_writes_outputs_caches_and_resumes(split, tmp_path, monkeypatch):
    out = tmp_path / "gan"
    path = train_gan(split, GanConfig(**TINY), out, CPU)
    assert path == out / "generator.pt" and path.is_file()
    for name in ("checkpoints/last.pt", "samples/epoch_001.png", "samples/final.png", "samples/real.png",
                 "gan_config.yaml"):
        assert (out / name).is_file(), name
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tb").iterdir())
    meta = read_metadata(path)
    assert (meta["latent_dim"], meta["image_size"], meta["channels"], meta["epochs"]) == (16, 16, 3, 1)
    # finished: returned at once, nothing trained or rewritten
    stamp = path.stat().st_mtime_ns
    monkeypatch.setattr(gan_module, "GanTrainer", None)  # would fail if training started
    assert train_gan(split, GanConfig(**TINY), out, CPU) == path
    assert train_gan(split, GanConfig(**{**TINY, "sample_every": 5}), out, CPU) == path  # not fingerprinted
    monkeypatch.undo()
    assert path.stat().st_mtime_ns == stamp
    # more epochs: resumes from last.pt and equals an uninterrupted 2-epoch run exactly
    two = dict(TINY, epochs=2)
    assert train_gan(split, GanConfig(**two), out, CPU) == path
    assert path.stat().st_mtime_ns != stamp and read_metadata(path)["epochs"] == 2
    assert (out / "samples" / "epoch_002.png").is_file()
    straight = train_gan(split, GanConfig(**two), tmp_path / "straight", CPU)
    assert torch.equal(outputs(path), outputs(straight))
    # a different config or fewer epochs: clear errors
    with pytest.raises(ConfigError, match=r"different configuration.*lr: 0.0005 -> 0.001"):
        train_gan(split, GanConfig(**{**two, "lr": 1e-3}), out, CPU)
    with pytest.raises(ConfigError, match="'gan.epochs': 1.*trained for 2 epochs"):
        train_gan(split, GanConfig(**TINY), out, CPU)
    with pytest.raises(ConfigError, match="different training images"):
        train_gan(split.subset(torch.arange(100)), GanConfig(**two), out, CPU)


def test_resume_after_an_interruption(split, tmp_path):
    """A crash after epoch 1 (last.pt written, no generator.pt) resumes to the uninterrupted result."""
    cfg = GanConfig(**dict(TINY, epochs=2))
    full = train_gan(split, cfg, tmp_path / "full", CPU)
    trainer = gan_module.GanTrainer(select_images(split, cfg), cfg, CPU)
    trainer.train_epoch()
    fp = gan_module.fingerprint(cfg, gan_module.data_summary(select_images(split, cfg)))
    from fairrun import rundir

    rundir.save_checkpoint(trainer.state_dict(fp), tmp_path / "cut" / "checkpoints" / "last.pt")
    resumed = train_gan(split, cfg, tmp_path / "cut", CPU)
    assert torch.equal(outputs(resumed), outputs(full))
    assert not (tmp_path / "cut" / "samples" / "epoch_001.png").exists()  # epoch 1 was not run again


def test_other_options_train_and_resume_exactly(split, tmp_path):
    """hinge + spectral norm + transposed convs, no weight average: trains, resumes exactly, exports G."""
    options = dict(TINY, loss="hinge", spectral_norm=True, upsample="transpose", r1_gamma=0.0, ema=0.0)
    train_gan(split, GanConfig(**options), tmp_path / "resumed", CPU)
    resumed = train_gan(split, GanConfig(**dict(options, epochs=2)), tmp_path / "resumed", CPU)
    straight = train_gan(split, GanConfig(**dict(options, epochs=2)), tmp_path / "straight", CPU)
    assert torch.equal(outputs(resumed), outputs(straight))
    assert not torch.equal(outputs(straight), outputs(train_gan(split, GanConfig(**dict(TINY, epochs=2)),
                                                                tmp_path / "default", CPU)))


# -- 4. group / label filters ------------------------------------------------------------------------------

def test_group_and_label_filters(split):
    b = split.group_names.index("B")
    only_b = select_images(split, GanConfig(group="B"))
    assert len(only_b) == int((split.g == b).sum()) and bool((only_b.g == b).all())
    smiling = split.class_names.index("smiling")
    both = select_images(split, GanConfig(group="B", label="smiling"))
    assert len(both) == int(((split.g == b) & (split.y == smiling)).sum()) > 0
    assert bool((both.y == smiling).all()) and bool((both.g == b).all())
    assert select_images(split, GanConfig()) is split
    with pytest.raises(ConfigError, match="'gan.group': 'Z'.*protected groups of this dataset are: A, B"):
        select_images(split, GanConfig(group="Z"))
    with pytest.raises(ConfigError, match="'gan.label': 'happy'.*not_smiling, smiling"):
        select_images(split, GanConfig(label="happy"))
    with pytest.raises(ConfigError, match="train on 10 images.*at least 16"):
        select_images(split.subset(torch.nonzero(split.g == b).flatten()[:10]), GanConfig())


def test_train_on_one_group_records_it(split, tmp_path):
    import yaml

    train_gan(split, GanConfig(**TINY, group="A"), tmp_path / "a", CPU)
    record = yaml.safe_load((tmp_path / "a" / "gan_config.yaml").read_text())
    assert record["gan"]["group"] == "A" and record["data"]["n"] == int((split.g == 0).sum())


# -- 5. it learns ------------------------------------------------------------------------------------------

def test_gan_learns_the_image_statistics(split):
    """80 steps move the generated images' colour statistics and per-pixel spread towards the data's."""
    cfg = GanConfig(latent_dim=16, width=8, batch_size=25, epochs=10, lr=1e-3, r1_gamma=10.0, seed=0)
    real = split.images.float() / 127.5 - 1
    z = sample_latents(256, cfg.latent_dim, seed=1)

    def distances(generator):
        generator.eval()
        with torch.no_grad():
            fake = generator(z)
        channel_stats = torch.cat([fake.mean((0, 2, 3)) - real.mean((0, 2, 3)),
                                   fake.std((0, 2, 3)) - real.std((0, 2, 3))]).abs().mean()
        pixel_spread = (fake.std(0) - real.std(0)).pow(2).mean().sqrt()  # per-pixel std over images
        return float(channel_stats), float(pixel_spread)

    trainer = gan_module.GanTrainer(select_images(split, cfg), cfg, CPU)
    before = distances(trainer.generator)
    for _ in range(cfg.epochs):
        trainer.train_epoch()
    after = distances(trainer.generator)
    assert after[0] < 0.5 * before[0] and after[1] < 0.5 * before[1], (before, after)


# -- 6. configuration errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ({"loss": "foo"}, r"'gan.loss': 'foo'. Accepted: one of ns_r1, hinge"),
    ({"latent_dim": 0}, r"'gan.latent_dim': 0"),
    ({"upsample": "bicubic"}, r"'gan.upsample'"),
    ({"r1_gamma": -1.0}, r"'gan.r1_gamma'"),
    ({"batch_size": 1}, r"'gan.batch_size'"),
    ({"image_size": 4}, r"'gan.image_size': 4"),
])
def test_bad_gan_values(override, message):
    with pytest.raises(ConfigError, match=message):
        typed_section("gan", GanConfig, override).validate()


def test_bad_gan_keys_and_sizes(split, tmp_path):
    with pytest.raises(ConfigError, match="Unknown key 'gan.lossy'"):
        typed_section("gan", GanConfig, {"lossy": "hinge"})
    with pytest.raises(ConfigError, match="'gan.latent_dim': 'big'"):
        typed_section("gan", GanConfig, {"latent_dim": "big"})
    odd = load_dataset(SyntheticDatasetConfig(image_size=24, n_train=40, n_val=4, n_test=4))["train"]
    with pytest.raises(ConfigError, match="'dataset.image_size': 24.*16, 32, 64 or 128"):
        train_gan(odd, GanConfig(**TINY), tmp_path / "odd", CPU)
    with pytest.raises(ConfigError, match="'gan.image_size': 32.*dataset's image size \\(16\\)"):
        train_gan(split, GanConfig(**TINY, image_size=32), tmp_path / "size", CPU)
    assert not (tmp_path / "odd").exists() and not (tmp_path / "size").exists()
    g, d = build_networks(GanConfig(width=4), 128, 1)  # every built-in size builds
    assert g(torch.randn(2, 64)).shape == (2, 1, 128, 128) and d(torch.randn(2, 1, 128, 128)).shape == (2,)


# -- the subcommand body, with conf/gan.yaml -------------------------------------------------------------

def compose_gan(overrides):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        return compose(config_name="gan", overrides=overrides)


def test_gan_yaml_defaults_match_the_dataclass():
    cfg = compose_gan([])
    assert cfg.dataset.name == "synthetic" and cfg.gpu.device == "auto"
    assert str(cfg.out_dir).startswith("outputs/gan/")
    assert typed_section("gan", GanConfig, cfg.gan) == GanConfig()


def test_run_gan_train(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = compose_gan(["dataset.n_train=64", "dataset.n_val=4", "dataset.n_test=4", "dataset.image_size=16",
                       "gan.width=4", "gan.latent_dim=8", "gan.batch_size=32", "gan.epochs=1", "gpu=cpu",
                       f"out_dir={out}"])
    path = run_gan_train(cfg)
    assert path == out / "generator.pt" and load_generator(path).latent_dim == 8
    assert "generator.pt" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="'gan.loss': 'wgan'"):
        run_gan_train(compose_gan(["gan.loss=wgan", f"out_dir={out}"]))
    with pytest.raises(ConfigError, match="Unknown key 'gan.lr_d'"):
        run_gan_train(compose_gan(["+gan.lr_d=0.1", f"out_dir={out}"]))
