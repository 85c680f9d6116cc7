"""The software and hardware a run ran on (``environment.json`` of a run directory, and results columns).

CPU results of a fixed seed move with the CPU's vector kernels (``torch.backends.cpu.get_cpu_capability()``,
oneDNN's and MKL's instruction sets), with the thread count and with package versions; GPU results with the
device, CUDA and cuDNN. So every run records all of them, and ``fairrun report`` warns when one table mixes
environments (a difference between rows might then be the software's, not the method's).
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

# Distributions whose versions are recorded (their import names differ for some: scikit-learn is sklearn).
PACKAGES = ("fairrun", "torch", "torchvision", "numpy", "pandas", "scikit-learn", "opacus", "fairlearn",
            "hydra-core", "omegaconf", "tensorboard")
# Environment variables that pick CPU kernels or thread counts, i.e. change float results.
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
                    "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG")
# What a results row carries: the fields that, when they differ, can change a run's numbers.
KEY_FIELDS = ("fairrun", "torch", "numpy", "pandas", "cpu_capability", "device_name")


def package_version(name: str) -> Optional[str]:
    """The installed version of distribution ``name``, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_commit(start: Optional[Path] = None) -> Optional[dict]:
    """``{"commit": sha, "dirty": bool}`` of the git checkout fairrun runs from, or None (an installed wheel,
    git missing, or not a checkout)."""
    root = Path(start or Path(__file__).resolve().parents[2])
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: Any = None) -> dict:
    """Everything about this process that can change a run's numbers: Python, the packages' versions, the
    git commit of a checkout, the CPU (model, torch's CPU capability, threads), the GPU (name, CUDA, cuDNN),
    torch's determinism flags and the kernel-selecting environment variables. ``device``: the run's
    torch.device (its name is recorded for CUDA)."""
    import torch

    cuda = device is not None and getattr(device, "type", str(device)) == "cuda"
    index = getattr(device, "index", None) or 0
    return {
        "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "git": git_commit(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "device": str(device) if device is not None else None,
        "device_name": torch.cuda.get_device_name(index) if cuda else "cpu",
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "deterministic": {"algorithms": torch.are_deterministic_algorithms_enabled(),
                          "cudnn_deterministic": torch.backends.cudnn.deterministic,
                          "cudnn_benchmark": torch.backends.cudnn.benchmark},
        "variables": {name: os.environ[name] for name in KERNEL_VARIABLES if name in os.environ},
        "argv": sys.argv[1:],
    }


def key_values(env: dict) -> dict:
    """The fields of :data:`KEY_FIELDS` of an :func:`environment` (package versions flattened)."""
    packages = env.get("packages") or {}
    return {field: packages.get(field, env.get(field)) for field in KEY_FIELDS}


def results_columns(env: dict) -> dict:
    """The environment columns of a results row: ``env_<field>`` for each key field."""
    return {f"env_{field}": value for field, value in key_values(env).items()}


def differences(before: dict, after: dict) -> list[str]:
    """``"torch 2.4.0 -> 2.5.1"`` for each key field that differs between two environments."""
    a, b = key_values(before), key_values(after)
    return [f"{field} {a[field]} -> {b[field]}" for field in KEY_FIELDS if a[field] != b[field]]
