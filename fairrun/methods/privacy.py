"""Privacy accounting shared by the private methods (``dpsgd``, ``dp_fedavg``), all through Opacus.

Nothing here computes a privacy bound itself: ε comes from Opacus' accountants (RDP: Mironov 2017 with
the improved RDP→(ε, δ) conversion of Balle et al. 2020; PRV: Gopi, Lee & Wutschitz, NeurIPS 2021;
GDP: Dong, Roth & Su 2019/2022) for the sampled Gaussian mechanism, and the noise for a target ε is
found by Opacus' ``get_noise_multiplier`` binary search.
"""
from __future__ import annotations

import math
import types

from torch import nn

from fairrun.core.validation import require, require_choice
from fairrun.core.errors import ConfigError

ACCOUNTANTS = ("rdp", "prv", "gdp")


def default_delta(n: int) -> float:
    """δ when ``method.delta`` is null: the largest power of ten strictly below 1/n.

    E.g. n = 30,000 → 1e-5; n = 162,770 (CelebA train) → 1e-6; n = 100 → 1e-3. δ < 1/n is the usual
    requirement for (ε, δ)-DP to be meaningful (a mechanism releasing one random record has δ = 1/n).
    """
    return 10.0 ** (math.ceil(math.log10(1.0 / max(n, 1))) - 1) if n > 1 else 0.1


def make_accountant(name: str):
    """A fresh Opacus accountant: ``rdp`` | ``prv`` | ``gdp``."""
    from opacus.accountants import create_accountant  # Opacus is imported when it is used: 5 s at start-up

    return create_accountant(mechanism=name)


def epsilon_of(accountant, delta: float) -> float:
    """ε spent so far according to ``accountant`` at this δ (0 before the first step)."""
    if not accountant.history:
        return 0.0
    return float(accountant.get_epsilon(delta=delta))


def epsilon_for(accountant_name: str, noise_multiplier: float, sample_rate: float, steps: int,
                delta: float) -> float:
    """ε of ``steps`` compositions of the sampled Gaussian mechanism (noise σ, sampling rate q)."""
    accountant = make_accountant(accountant_name)
    accountant.history = [(noise_multiplier, sample_rate, steps)] if steps > 0 else []
    return epsilon_of(accountant, delta)


def noise_for_epsilon(target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str,
                      tolerance: float = 0.01) -> float:
    """σ such that ``steps`` steps at rate ``sample_rate`` spend at most ``target_epsilon`` (Opacus' search)."""
    from opacus.accountants.utils import get_noise_multiplier

    try:
        return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta,
                                          sample_rate=sample_rate, steps=steps, accountant=accountant,
                                          epsilon_tolerance=tolerance))
    except ValueError as err:
        raise ConfigError(f"No noise level reaches method.target_epsilon={target_epsilon} at δ={delta} with "
                          f"sampling rate {sample_rate:.4g} over {steps} steps ({err}). Ask for a larger "
                          f"target_epsilon, fewer steps, or set method.noise_multiplier instead.") from None


def validate_privacy_keys(cfg, *, clip_key: str) -> None:
    """Range checks common to the private methods' configs: noise XOR target ε, δ, clip, accountant."""
    if (cfg.noise_multiplier is None) == (cfg.target_epsilon is None):
        raise ConfigError(
            f"Set exactly one of method.noise_multiplier and method.target_epsilon (got noise_multiplier="
            f"{cfg.noise_multiplier!r}, target_epsilon={cfg.target_epsilon!r}). Give a noise level, e.g. "
            f"method.noise_multiplier=1.0, or a privacy budget, e.g. method.target_epsilon=8 (the noise is "
            f"then chosen so the planned training spends that ε), not both."
        )
    if cfg.noise_multiplier is not None:
        require(cfg.noise_multiplier >= 0, "method.noise_multiplier", cfg.noise_multiplier,
                "a number >= 0 (0 = clipping without noise: no privacy, ε = inf), or null with target_epsilon")
    if cfg.target_epsilon is not None:
        require(cfg.target_epsilon > 0, "method.target_epsilon", cfg.target_epsilon, "a number > 0, or null")
    if cfg.delta is not None:
        require(0 < cfg.delta < 1, "method.delta", cfg.delta, "a number in (0, 1), or null for the default "
                                                              "(largest power of ten below 1/N)")
    clip = getattr(cfg, clip_key)
    require(clip > 0, f"method.{clip_key}", clip, "a number > 0 (the L2 clipping norm)")
    require_choice("method.accountant", cfg.accountant, ACCOUNTANTS)


def privacy_columns(epsilon: float, delta: float, noise_multiplier: float, clip: float, sample_rate: float,
                    steps: int, accountant: str) -> dict:
    """The results.pkl columns of a private run."""
    return {"epsilon": epsilon, "delta": delta, "noise_multiplier": noise_multiplier, "max_grad_norm": clip,
            "dp_sample_rate": sample_rate, "dp_steps": steps, "dp_accountant": accountant}


def _residual_forward(block, x):
    """torchvision's BasicBlock/Bottleneck forward with ``out + identity`` instead of ``out += identity``."""
    from torchvision.models.resnet import Bottleneck

    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    out = block.bn2(block.conv2(out))
    if isinstance(block, Bottleneck):
        out = block.bn3(block.conv3(block.relu(out)))
    return block.relu(out + identity)


def opacus_compatible(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """Make ``model`` trainable with per-sample gradients; returns (model, notes on what changed).

    Opacus' ``ModuleValidator.fix`` replaces BatchNorm (which mixes examples of a batch, so no per-example
    gradient exists) by GroupNorm with min(32, C) groups; in-place activations are made out-of-place
    because Opacus' backward hooks cannot see through in-place changes of a hooked module's output (the
    shortcut addition of torchvision's residual blocks included).
    Called from ``adapt_model``, so ``fairrun eval`` rebuilds the same architecture from best.pt.
    """
    from opacus.validators import ModuleValidator
    from torchvision.models.resnet import BasicBlock, Bottleneck

    before = {type(m).__name__ for m in model.modules()}
    batchnorms = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    notes = []
    if batchnorms:
        model = ModuleValidator.fix(model)
        notes.append(f"{batchnorms} BatchNorm layer(s) replaced by GroupNorm (Opacus ModuleValidator.fix)")
    inplace = [m for m in model.modules() if getattr(m, "inplace", False)]
    for module in inplace:
        module.inplace = False
    for module in model.modules():  # torchvision residual blocks add the shortcut in place: do it out of place
        if isinstance(module, (BasicBlock, Bottleneck)):
            module.forward = types.MethodType(_residual_forward, module)
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise ConfigError(f"The model ({', '.join(sorted(before))}) cannot be trained privately even after "
                          f"Opacus' fixes: {'; '.join(str(e) for e in errors)}. Use model=logreg, mlp, cnn or "
                          f"resnet18/34/50.")
    return model, notes
