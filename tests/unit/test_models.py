"""Every architecture builds for small and larger inputs and exposes features + head."""
import pytest
import torch

from fairrun.core.errors import FairrunError
from fairrun.models import build_model
from fairrun.models.registry import MODELS, CNNConfig, MLPConfig, ResNetConfig


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("size", [16, 64])
def test_models_give_logits_and_latents(name, size):
    torch.manual_seed(0)
    model = build_model(MODELS[name].Config(name=name), 3, size, 2).eval()
    x = torch.randn(2, 3, size, size)
    latent = model.features(x)
    assert latent.shape == (2, model.latent_dim)
    assert model(x).shape == (2, 2)


def test_mlp_follows_the_fairface_notebook_layout():
    layers = [type(m).__name__ for m in build_model(MLPConfig(), 3, 16, 2).backbone]
    assert layers == ["Flatten", "Dropout", "Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU"]


def test_cnn_blocks_are_capped_by_input_size():
    small = build_model(CNNConfig(blocks=6), 3, 16, 2)
    pools = sum(isinstance(m, torch.nn.MaxPool2d) for m in small.backbone)
    assert pools == 2  # 16 -> 8 -> 4 px


def test_resnet_small_input_stem():
    net = build_model(ResNetConfig(name="resnet18"), 3, 32, 5).backbone
    assert net.conv1.stride == (1, 1) and isinstance(net.maxpool, torch.nn.Identity)
    large = build_model(ResNetConfig(name="resnet18"), 3, 128, 5).backbone
    assert large.conv1.stride == (2, 2)


def test_pretrained_weights_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FairrunError, match="never downloads") as err:
        build_model(ResNetConfig(name="resnet18", pretrained=True), 3, 32, 2)
    assert str(tmp_path) in str(err.value) and "resnet18" in str(err.value)


def test_pretrained_weights_load_from_the_local_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = torchvision.models.resnet18(weights=None)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1])
    model = build_model(ResNetConfig(name="resnet18", pretrained=True), 3, 128, 2)
    assert torch.equal(model.backbone.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
