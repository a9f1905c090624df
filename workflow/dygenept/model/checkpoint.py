"""Checkpoints: the network's config as JSON beside its weights as safetensors (never pickle)."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file

from ..artifacts import atomic_path, read_json, write_json_atomic
from .network import DyGenePTModule, ModelConfig


def save_checkpoint(
    model: DyGenePTModule, weights_path: Path, config_path: Path, extra: dict
) -> None:
    with atomic_path(weights_path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_json_atomic(config_path, {"model": model.config.to_dict(), **extra})


def load_checkpoint(
    weights_path: str | Path, config_path: str | Path
) -> tuple[DyGenePTModule, dict]:
    saved = read_json(config_path)
    model = DyGenePTModule(ModelConfig(**saved["model"]))
    model.load_state_dict(load_file(str(weights_path)))
    model.eval()
    return model, saved
