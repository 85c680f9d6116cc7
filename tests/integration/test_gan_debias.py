"""GAN latent-space de-biasing: the complementary latent formula exactly, and the staged method end to end."""
import numpy as np
import pytest
import torch

from fairrun.core.errors import FairrunError
from fairrun.generative.latent import complementary_latents, fit_hyperplane


@pytest.mark.parametrize("dim", [2, 16, 512])
def test_complementary_latent_keeps_target_and_mirrors_protected_score(dim):
    rng = np.random.default_rng(dim)
    w_a, w_g = rng.normal(size=dim), rng.normal(size=dim)
    w_a, w_g = w_a / np.linalg.norm(w_a), w_g / np.linalg.norm(w_g)
    b_a, b_g = rng.normal(), rng.normal()
    z = rng.normal(size=(1000, dim))
    z_prime = complementary_latents(z, w_a, b_a, w_g, b_g)
    np.testing.assert_allclose(z_prime @ w_a + b_a, z @ w_a + b_a, rtol=0, atol=1e-12)
    np.testing.assert_allclose(z_prime @ w_g + b_g, -(z @ w_g + b_g), rtol=0, atol=1e-12)


def test_parallel_planes_are_refused():
    w = np.array([1.0, 0.0])
    with pytest.raises(FairrunError, match="parallel"):
        complementary_latents(np.zeros((3, 2)), w, 0.0, w, 0.1)


def test_hyperplane_is_a_unit_normal_separating_the_labels():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=8)
    direction /= np.linalg.norm(direction)
    z = rng.normal(size=(400, 8))
    labels = (z @ direction + 0.2 > 0).astype(int)
    w, b, accuracy = fit_hyperplane(z, labels)
    assert np.linalg.norm(w) == pytest.approx(1.0)
    assert accuracy > 0.97 and w @ direction > 0.95
    with pytest.raises(FairrunError, match="single class"):
        fit_hyperplane(z, np.zeros(400))


STAGED = ["dataset.n_train=600", "dataset.target=glasses", "dataset.n_val=100", "dataset.n_test=100", "dataset.image_size=16",
          "dataset.group_proportions=[0.7,0.3]", "trainer.epochs=1", "trainer.batch_size=64", "gpu=cpu",
          "model.width=8", "model.blocks=2", "method=gan_debias", "method.gan_epochs=8", "method.gan_width=16",
          "method.num_latents=120", "method.svm_samples=60", "method.grid_pairs=4"]


class PCAGenerator(torch.nn.Module):
    """A linear generator fitted to real images: x = mean + z · (components scaled by their std)."""

    def __init__(self, images: torch.Tensor, latent_dim: int):
        super().__init__()
        x = images.float().div(127.5).sub(1).flatten(1)
        mean = x.mean(0)
        _, s, v = torch.linalg.svd(x - mean, full_matrices=False)
        self.register_buffer("mean", mean)
        self.register_buffer("basis", v[:latent_dim] * (s[:latent_dim, None] / (len(x) - 1) ** 0.5))
        self.shape = tuple(images.shape[1:])

    def forward(self, z):
        return (self.mean + z @ self.basis).clamp(-1, 1).reshape(z.shape[0], *self.shape)


def pca_generator(tmp_path) -> str:
    """An external TorchScript generator file whose images both baseline classifiers tell apart."""
    from fairrun.config import validate_run_config
    from fairrun.data.registry import load_dataset
    from fairrun.generative.generators import export_generator
    from tests.conftest import compose_train

    cfg = validate_run_config(compose_train(STAGED))
    train = load_dataset(cfg.dataset)["train"]
    path = tmp_path / "pca_generator.pt"
    export_generator(PCAGenerator(train.images, 16), path, latent_dim=16, image_size=16, channels=3,
                     source="PCA of the training images")
    return str(path)


def test_all_stages_run_end_to_end_and_a_rerun_skips_them(tmp_path):
    from fairrun.config import validate_run_config
    from fairrun.training import run_training
    from tests.conftest import compose_train

    overrides = [*STAGED, f"method.generator={pca_generator(tmp_path)}", "method.trust_generator=true",
                 "trainer.epochs=3", "eval.threshold=calibrated"]
    cfg = validate_run_config(compose_train(overrides))
    results = run_training(cfg, tmp_path / "run").set_index("split")
    stages = tmp_path / "run" / "gan_debias"
    artefacts = ["target_clf/done", "protected_clf/done", "latents.npy", "images_z.npy",
                 "labels.csv", "hyperplanes.json", "latents_prime.npy", "images_z_prime.npy", "pairs.png"]
    for name in artefacts:
        assert (stages / name).is_file(), name
    test = results.loc["test"]
    assert test["gd_n_generated"] == 2 * 60 and 0 <= test["accuracy"] <= 1
    assert test["gd_svm_acc_protected"] > 0.8  # the protected attribute is linear in a PCA latent
    for metric in ("ap", "eopp_diff", "ba", "kl"):  # the published protocol: bootstrap medians
        assert test[f"{metric}_lo"] <= test[f"{metric}_median"] <= test[f"{metric}_hi"], metric
    import numpy as np

    z, z_prime = np.load(stages / "latents.npy")[60:], np.load(stages / "latents_prime.npy")
    import json

    planes = json.loads((stages / "hyperplanes.json").read_text())
    w_a, w_g = np.array(planes["w_a"]), np.array(planes["w_g"])
    np.testing.assert_allclose(z_prime @ w_a, z @ w_a, atol=1e-9)
    np.testing.assert_allclose(z_prime @ w_g + planes["b_g"], -(z @ w_g + planes["b_g"]), atol=1e-9)

    before = {name: (stages / name).stat().st_mtime_ns for name in artefacts}
    again = run_training(validate_run_config(compose_train([*overrides, "resume=false"])), tmp_path / "run")
    assert {name: (stages / name).stat().st_mtime_ns for name in artefacts} == before  # every stage skipped
    assert again.set_index("split").loc["test", "gd_n_generated"] == 120


def test_given_baseline_runs_must_be_finished(tmp_path):
    from fairrun.config import validate_run_config
    from fairrun.training import run_training
    from tests.conftest import compose_train

    cfg = validate_run_config(compose_train([*STAGED, f"method.target_run={tmp_path / 'nothing'}"]))
    with pytest.raises(FairrunError, match="target_run"):
        run_training(cfg, tmp_path / "run")


def test_a_missing_generator_file_is_named_before_any_sub_run_trains(tmp_path):
    from fairrun.config import validate_run_config
    from fairrun.training import run_training
    from tests.conftest import compose_train

    cfg = validate_run_config(compose_train([*STAGED, f"method.generator={tmp_path / 'nonexistent.pt'}"]))
    with pytest.raises(FairrunError, match=r"'method.generator'.*nonexistent.pt.*does not exist") as err:
        run_training(cfg, tmp_path / "run")
    assert "gan.generator" not in str(err.value)
    assert not (tmp_path / "run" / "gan_debias" / "target_clf").exists()  # no baseline was trained first


def test_an_external_generator_runs_only_when_trusted(tmp_path):
    """A generator file is code: without method.trust_generator=true it is refused, naming its SHA-256."""
    import hashlib

    from fairrun.config import validate_run_config
    from fairrun.core.errors import ConfigError
    from fairrun.training import run_training
    from tests.conftest import compose_train

    path = tmp_path / "someone_elses.pt"
    path.write_bytes(b"not even opened")
    cfg = validate_run_config(compose_train([*STAGED, f"method.generator={path}"]))
    with pytest.raises(ConfigError, match="is code") as err:
        run_training(cfg, tmp_path / "run")
    assert hashlib.sha256(b"not even opened").hexdigest() in str(err.value)
    assert "method.trust_generator=true" in str(err.value)


MINORITY = [*STAGED[:11], "method=minority_gan", "method.gan_epochs=4", "method.gan_width=8",
            "method.num_generated=50"]


def test_minority_gan_also_runs_an_external_generator_only_when_trusted(tmp_path):
    """minority_gan shares gan_debias' generator check: refused (before any training) without
    method.trust_generator=true, which its config accepts."""
    import hashlib

    from fairrun.config import validate_run_config
    from fairrun.core.errors import ConfigError
    from fairrun.training import run_training
    from tests.conftest import compose_train

    path = tmp_path / "someone_elses.pt"
    path.write_bytes(b"not even opened")
    cfg = validate_run_config(compose_train([*MINORITY, "method.source=group", "method.group=B",
                                             f"method.generator={path}"]))
    with pytest.raises(ConfigError, match="is code") as err:
        run_training(cfg, tmp_path / "run")
    assert hashlib.sha256(b"not even opened").hexdigest() in str(err.value)
    assert not (tmp_path / "run" / "gan_debias" / "target_clf").exists()
    trusted = validate_run_config(compose_train([*MINORITY, "method.source=group", "method.group=B",
                                                 f"method.generator={path}", "method.trust_generator=true"]))
    assert trusted.method.trust_generator is True


def test_minority_gan_adds_generated_images_of_the_chosen_group(tmp_path):
    from fairrun.config import validate_run_config
    from fairrun.training import run_training
    from tests.conftest import compose_train

    cfg = validate_run_config(compose_train([*MINORITY, "method.source=group", "method.group=B"]))
    test = run_training(cfg, tmp_path / "run").set_index("split").loc["test"]
    assert test["mg_n_generated"] == 50 and test["mg_minority_share[B]"] == 1.0
    assert (tmp_path / "run" / "gan_debias" / "generated.png").is_file()
    with pytest.raises(Exception, match="method.group"):
        validate_run_config(compose_train([*MINORITY, "method.source=group"]))
    bad = validate_run_config(compose_train([*MINORITY, "method.source=group", "method.group=Z"]))
    with pytest.raises(Exception, match="groups are A, B"):
        run_training(bad, tmp_path / "bad")


def test_minority_gan_from_the_vae_minority_set(tmp_path):
    from fairrun.config import validate_run_config
    from fairrun.training import run_training
    from tests.conftest import compose_train

    cfg = validate_run_config(compose_train([*MINORITY, "method.source=vae", "method.fraction=0.1",
                                             "method.vae_epochs=1", "method.vae_latent_dim=8",
                                             "method.gan_epochs=2"]))
    test = run_training(cfg, tmp_path / "run").set_index("split").loc["test"]
    n_train = test["n_train[A]"] + test["n_train[B]"]
    assert test["mg_minority_size"] == round(0.1 * n_train) and test["mg_n_generated"] == 50
    assert (tmp_path / "run" / "gan_debias" / "vae" / "vae.pt").is_file()
