"""Generators: latent vectors z (N, latent_dim) -> images (N, C, H, W) in [-1, 1], in one file format.

fairrun's own GAN (:mod:`fairrun.generative.gan`) and external generators share ONE on-disk
format: a TorchScript module file (``torch.jit.save``) whose ``forward(z)`` maps a float32 batch
of latents (N, latent_dim) to float images (N, C, H, W) in [-1, 1], optionally with a JSON entry
``fairrun.json`` (a ``torch.jit.save`` "extra file") describing it::

    {"latent_dim": 512, "image_size": 128, "channels": 3, "output_range": [-1, 1], "source": "..."}

TorchScript is used because it loads without the Python code that defined the network, so a
generator trained elsewhere (a Progressive GAN, a StyleGAN2-ADA) is used by fairrun without
installing its repository, and nothing is ever downloaded: fairrun only reads the file you point
it to (``gan.generator=PATH``).

Exporting an external generator
-------------------------------
Wrap it in a module whose ``forward(z)`` returns images in [-1, 1], put it in eval mode, trace it
with a dummy latent batch and save it. For a Progressive GAN of facebookresearch/pytorch_GAN_zoo
(latent size 512; ``model_name="celeba"`` gives 128 px, ``"celebAHQ-256"`` 256 px)::

    import torch

    pgan = torch.hub.load("facebookresearch/pytorch_GAN_zoo:hub", "PGAN", model_name="celeba",
                          pretrained=True, useGPU=False)

    class Wrapper(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, z):
            return self.net(z).clamp(-1, 1)

    wrapper = Wrapper(pgan.netG).eval()
    traced = torch.jit.trace(wrapper, torch.randn(1, 512))
    torch.jit.save(traced, "pgan_celeba128.pt")

then give fairrun ``gan.generator=pgan_celeba128.pt gan.latent_dim=512 gan.image_size=64`` (it
checks the output shape on one probe batch and resizes 128 -> 64 px bilinearly), or write the
metadata into the file once with :func:`export_generator` and pass only ``gan.generator``::

    from fairrun.generative.generators import export_generator
    export_generator(wrapper, "pgan_celeba128.pt", latent_dim=512, image_size=128, channels=3,
                     source="pytorch_GAN_zoo PGAN celeba")

For StyleGAN2-ADA (NVlabs/stylegan2-ada-pytorch; load ``G = legacy.load_network_pkl(f)["G_ema"]``
inside that repository) the wrapper's forward is
``return self.G(z, None, truncation_psi=1.0, noise_mode="const", force_fp32=True).clamp(-1, 1)``
(``noise_mode="const"`` makes the traced graph deterministic; trace on the CPU if its custom CUDA
ops get in the way) and ``latent_dim = G.z_dim``.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from fairrun.core.errors import FairrunError
from fairrun.core.fingerprint import file_sha256

log = logging.getLogger("fairrun")

METADATA = "fairrun.json"
README_HINT = ("See docs/generative.md, section 'Generators', for how to export a generator (wrap it so that "
               "forward(z) returns images in [-1, 1], then torch.jit.trace and torch.jit.save it); "
               "fairrun never downloads one.")
PROBE_BATCH = 2


@contextmanager
def _quiet_jit():
    """Silence torch's FutureWarning that TorchScript is deprecated (it is fairrun's generator format)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r"`torch\.jit\.\w+` is deprecated")
        yield


def sample_latents(n: int, latent_dim: int, seed: int) -> torch.Tensor:
    """``n`` standard-normal latents (n, latent_dim) float32, from a torch.Generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(int(n), int(latent_dim), generator=generator)


def _script(module: nn.Module, latent_dim: int) -> torch.jit.ScriptModule:
    """TorchScript ``module``: as is if scripted, else ``torch.jit.script``, else a trace on a dummy z."""
    if isinstance(module, torch.jit.ScriptModule):
        return module
    try:
        with _quiet_jit():
            return torch.jit.script(module)
    except Exception as err:  # dynamic Python that scripting cannot compile: fall back to tracing
        log.debug("torch.jit.script failed (%s); tracing with a dummy latent batch instead", err)
        try:
            device = next(module.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
        with torch.no_grad(), _quiet_jit():
            return torch.jit.trace(module, torch.randn(1, latent_dim, device=device), check_trace=False)


def export_generator(module: nn.Module, path: Union[str, Path], latent_dim: int, image_size: int,
                     channels: int, source: str = "fairrun dcgan", extra: Optional[dict] = None) -> Path:
    """Save ``module`` (forward(z) -> images in [-1, 1]) as a TorchScript generator file with metadata.

    The module is scripted (``torch.jit.script``), or traced with a dummy z of shape (1, latent_dim)
    when scripting fails; put it in eval mode first (a trace records the mode it ran in). The file
    is written atomically (temporary file, then ``os.replace``) and carries the JSON entry
    ``fairrun.json`` = {latent_dim, image_size, channels, output_range: [-1, 1], source} plus any
    ``extra`` keys (the built-in GAN records its config fingerprint and epochs there).
    Returns ``path``.
    """
    path = Path(path)
    meta = {"latent_dim": int(latent_dim), "image_size": int(image_size), "channels": int(channels),
            "output_range": [-1, 1], "source": str(source)}
    meta.update(extra or {})
    scripted = _script(module, int(latent_dim))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with _quiet_jit():
            torch.jit.save(scripted, tmp, _extra_files={METADATA: json.dumps(meta, sort_keys=True)})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_metadata(path: Union[str, Path]) -> Optional[dict]:
    """The ``fairrun.json`` metadata of a generator file, or None when it has none (or is unreadable)."""
    try:
        _, meta = _load_module(Path(path), "cpu")
    except FairrunError:
        return None
    return meta


def _load_module(path: Path, device, keys: str = "gan") -> tuple[torch.jit.ScriptModule, Optional[dict]]:
    if not path.is_file():
        where = "is a directory" if path.is_dir() else "does not exist"
        raise FairrunError(
            f"Generator file {path} {where}. {keys}.generator must be the path of a TorchScript generator "
            f"file (a module saved with torch.jit.save whose forward(z) maps latents (N, latent_dim) to "
            f"images (N, C, H, W) in [-1, 1]), such as the generator.pt that `fairrun gan train` writes. "
            f"{README_HINT}")
    log.info("loading generator %s (SHA-256 %s): a TorchScript file is code, run with your permissions",
             path, file_sha256(path))
    extra = {METADATA: ""}
    try:
        with _quiet_jit():
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FairrunError(
            f"{path} is not a TorchScript file ({first_line}). fairrun loads generators saved with "
            f"torch.jit.save (a traced or scripted module); a state_dict, a pickled model (torch.save) or a "
            f"network .pkl cannot be used directly. {README_HINT}") from None
    raw = extra[METADATA]
    if not raw:
        return module, None
    try:
        meta = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except ValueError as err:
        raise FairrunError(f"{path}: its {METADATA} metadata entry is not a valid JSON object ({err}). "
                           f"Export the generator again with fairrun.generative.generators.export_generator."
                           ) from None
    return module, meta


def _positive_int(value, what: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FairrunError(f"{path}: invalid {what} {value!r} (expected an integer >= 1).")
    return value


class LoadedGenerator:
    """A generator ready to use: ``generate(z)`` -> float images in [-1, 1] of ``image_size`` pixels.

    Attributes: ``latent_dim``, ``image_size`` (the size fairrun uses), ``channels``,
    ``native_size`` (the size the module itself outputs; images are resized bilinearly when it
    differs from ``image_size``), ``resized`` (whether they are), ``device``, ``metadata`` (the
    file's ``fairrun.json`` dict, or None for an external file without one), ``path``, ``module``.
    """

    def __init__(self, module: torch.jit.ScriptModule, latent_dim: int, image_size: int, channels: int,
                 native_size: int, device: torch.device, metadata: Optional[dict] = None,
                 path: Optional[Path] = None):
        self.module = module
        self.latent_dim = int(latent_dim)
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.native_size = int(native_size)
        self.device = torch.device(device)
        self.metadata = metadata
        self.path = path

    @property
    def resized(self) -> bool:
        return self.native_size != self.image_size

    def __repr__(self) -> str:
        size = f"{self.native_size}->{self.image_size}px" if self.resized else f"{self.image_size}px"
        return (f"LoadedGenerator({self.path}, latent_dim={self.latent_dim}, {self.channels}x{size}, "
                f"device={self.device})")

    def _forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.module(z)
        if self.resized:
            x = F.interpolate(x.float(), size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=self.native_size > self.image_size)
        return x.float().clamp_(-1.0, 1.0)

    def generate(self, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Images G(z) as float32 (N, C, image_size, image_size) in [-1, 1] on the CPU.

        Runs without gradients, ``batch_size`` latents at a time on the generator's device.
        """
        z = torch.as_tensor(z)
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected latents shaped (N, {self.latent_dim}), got {tuple(z.shape)}")
        out = torch.empty(len(z), self.channels, self.image_size, self.image_size)
        with torch.no_grad():
            for start in range(0, len(z), max(1, int(batch_size))):
                chunk = z[start:start + batch_size].to(self.device, torch.float32)
                out[start:start + len(chunk)] = self._forward(chunk).cpu()
        return out

    def generate_uint8(self, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Images G(z) as uint8 (N, C, H, W): round((x + 1) * 127.5), the format of a LabeledSplit."""
        return to_uint8(self.generate(z, batch_size))


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float images in [-1, 1] -> uint8 in [0, 255] (round((x + 1) * 127.5), clamped)."""
    return images.float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def load_generator(path: Union[str, Path], latent_dim: Optional[int] = None, image_size: Optional[int] = None,
                   device: Union[str, torch.device] = "cpu", keys: str = "gan") -> LoadedGenerator:
    """Load a TorchScript generator file onto ``device`` and check it on one probe batch.

    ``latent_dim`` and ``image_size`` (the config keys ``gan.latent_dim``, ``gan.image_size``) are
    needed for an external file without fairrun metadata; a file's metadata wins over a
    ``latent_dim`` passed here (with a warning when they differ). ``image_size`` is the size fairrun
    wants: when the generator's own output size differs (a 128 px PGAN used at 64 px) its images
    are resized bilinearly (``LoadedGenerator.resized``); None = the generator's own size.
    ``keys`` is the config section the file was named in (``gan`` or ``method`` for method=gan_debias), so
    messages name the user's key. Raises :class:`~fairrun.core.errors.FairrunError` for a missing or non-TorchScript file, an unknown
    latent size, or outputs that are not (N, C, H, H) images.
    """
    path = Path(path)
    device = torch.device(device)
    module, meta = _load_module(path, device, keys)
    module.eval()
    known_dim = meta.get("latent_dim") if meta else None
    if known_dim is not None:
        known_dim = _positive_int(known_dim, f"latent_dim in its {METADATA} metadata", path)
        if latent_dim is not None and int(latent_dim) != known_dim:
            log.warning("generator %s: its metadata says latent_dim=%d; using that, not %s.latent_dim=%s",
                        path, known_dim, keys, latent_dim)
    dim = known_dim if known_dim is not None else latent_dim
    if dim is None:
        raise FairrunError(
            f"The latent size of the generator {path} is unknown: the file has no fairrun metadata "
            f"({METADATA}). Set {keys}.latent_dim (e.g. 512 for a Progressive GAN or StyleGAN2) and "
            f"{keys}.image_size, or export it once with fairrun.generative.generators.export_generator, which "
            f"records them in the file. {README_HINT}")
    dim = _positive_int(dim, f"{keys}.latent_dim", path)
    if image_size is not None:
        image_size = _positive_int(image_size, f"{keys}.image_size", path)

    probe = sample_latents(PROBE_BATCH, dim, seed=0).to(device)
    try:
        with torch.no_grad():
            out = module(probe)
    except Exception as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FairrunError(
            f"Calling the generator {path} on latents of shape ({PROBE_BATCH}, {dim}) failed ({first_line}). "
            f"Check {keys}.latent_dim (the length of one latent vector z) and that forward(z) takes only z. "
            f"{README_HINT}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != PROBE_BATCH \
            or out.shape[1] not in (1, 3) or out.shape[2] != out.shape[3]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise FairrunError(
            f"The generator {path} returned {got} for latents of shape ({PROBE_BATCH}, {dim}); fairrun "
            f"needs square images ({PROBE_BATCH}, C, H, H) with C = 1 or 3 channels, in [-1, 1]. Wrap the "
            f"network so that forward(z) returns just the image tensor. {README_HINT}")
    native = int(out.shape[-1])
    channels = int(out.shape[1])
    if meta:
        for key, measured in (("channels", channels), ("image_size", native)):
            if key in meta and meta[key] != measured:
                raise FairrunError(f"The generator {path} outputs {key}={measured} but its metadata says "
                                   f"{meta[key]}; export it again.")
    lo, hi = float(out.min()), float(out.max())
    if lo < -1.5 or hi > 1.5:
        log.warning("generator %s: probe outputs span [%.3g, %.3g], expected [-1, 1]; fairrun clamps them",
                    path, lo, hi)
    size = image_size if image_size is not None else native
    loaded = LoadedGenerator(module, dim, size, channels, native, device, meta, path)
    if loaded.resized:
        log.info("generator %s outputs %d px images; resizing them to %d px (bilinear)", path, native, size)
    return loaded
