"""Which torch device and precision a frozen encoder runs on (config ``device``: auto, cpu, cuda, cuda:N)."""

from __future__ import annotations

from .errors import InputError


def resolve_device(configured: str, key: str) -> str:
    """``auto``: the first CUDA device when torch sees one, else the CPU; otherwise the device named."""
    import torch

    if configured == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if configured.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(
            f"config '{key}' = {configured} but torch sees no CUDA device (torch {torch.__version__}). "
            "Fix: set it to auto or cpu, or run on a GPU node."
        )
    return configured


def autocast(device: str, dtype):
    """``torch.autocast`` to ``dtype`` on ``device`` (no-op for ``dtype`` None)."""
    import torch

    device_type = "cuda" if device.startswith("cuda") else "cpu"
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)
