"""The forward pass: a frozen Hugging Face encoder, pooled per text, on CPU or GPU.

Texts are tokenised once up front (the fast tokenizer's batch call, in Rust), deduplicated, sorted by
token length and cut into token-budget batches (``batching``); a worker thread pads the next batch while
the model runs the current one. On a GPU the model runs under fp16/bf16 autocast; pooling and
normalisation are done in float32. Everything runs under ``torch.inference_mode``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..devices import autocast, resolve_device
from ..settings import read_fields
from .batching import Batch, plan_batches
from .model_dir import KEY, EncoderError, EncoderModelSettings, ModelFiles, resolve_model_files

log = logging.getLogger(__name__)

Pooling = Literal["mean", "cls"]
Precision = Literal["fp32", "fp16", "bf16"]
PROGRESS_SECONDS = 10.0
# Texts per tokenizer call: token ids are kept as int32 arrays, never as one huge list of Python ints.
TOKENIZE_CHUNK = 4096


@dataclass
class EncodeReport:
    """What one ``encode`` call did, for the provenance record and the benchmarks."""

    texts: int = 0
    tokens: int = 0  # real tokens after truncation, special tokens included
    padded_tokens: int = 0
    truncated: int = 0  # texts longer than max_length, cut to it
    batches: int = 0
    seconds: float = 0.0


def pooling_of(directory, configured: str | None) -> Pooling:
    """The configured pooling, else what a sentence-transformers ``1_Pooling/config.json`` says, else mean."""
    if configured:
        return configured  # type: ignore[return-value]
    config_path = directory / "1_Pooling" / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text())
        return "cls" if config.get("pooling_mode_cls_token") else "mean"
    return "mean"


def resolve_precision(configured: str, device: str) -> Precision:
    """``auto``: bf16 on a GPU that has it, else fp16 on a GPU; fp32 on the CPU."""
    import torch

    on_gpu = device.startswith("cuda")
    if configured == "auto":
        if not on_gpu:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if configured == "fp16" and not on_gpu:
        raise EncoderError(
            "config 'facet_embed.precision' = fp16 on the CPU. Fix: fp32 or bf16 on the CPU, fp16 on a GPU."
        )
    return configured  # type: ignore[return-value]


@dataclass(frozen=True)
class TextEncoderSettings:
    """Config ``facet_embed`` less its cache: the model and where and how it runs."""

    encoder: EncoderModelSettings
    device: str
    precision: str
    tokens_per_batch: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TextEncoderSettings:
        """From the validated ``facet_embed`` section."""
        return read_fields(cls, params, encoder=EncoderModelSettings.from_params(params["encoder"]))


class TextEncoder:
    """A frozen encoder with its pooling; ``encode`` returns one vector per text."""

    def __init__(
        self,
        files: ModelFiles,
        pooling: Pooling | None,
        normalize: bool,
        max_length: int,
        tokens_per_batch: int,
        device: str,
        precision: str,
    ):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self.files = files
        self.pooling: Pooling = pooling_of(files.directory, pooling)
        self.normalize = normalize
        self.device = resolve_device(device, "facet_embed.device")
        self.precision = resolve_precision(precision, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(files.directory)
        self.model = AutoModel.from_pretrained(files.directory, dtype=torch.float32)
        self.model.eval().requires_grad_(False).to(self.device)
        self.dim = int(self.model.config.hidden_size)
        limit = getattr(self.model.config, "max_position_embeddings", max_length)
        if max_length > limit:
            raise EncoderError(
                f"{KEY}.max_length' = {max_length} exceeds the model's {limit} positions. "
                f"Fix: set it to at most {limit}."
            )
        self.max_length = max_length
        self.tokens_per_batch = max(tokens_per_batch, max_length)
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.report = EncodeReport()

    @classmethod
    def from_settings(cls, settings: TextEncoderSettings) -> TextEncoder:
        """The encoder config section ``facet_embed`` names."""
        model = settings.encoder
        return cls(
            resolve_model_files(model),
            model.pooling,
            model.normalize,
            model.max_length,
            settings.tokens_per_batch,
            settings.device,
            settings.precision,
        )

    def describe(self) -> dict:
        return {
            "model_source": self.files.source,
            "weights": [path.name for path in self.files.weights],
            "weights_sha256": self.files.sha256,
            "dim": self.dim,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
            "tokens_per_batch": self.tokens_per_batch,
            "device": self.device,
            "precision": self.precision,
        }

    def tokenize(self, texts: Sequence[str]) -> tuple[list[np.ndarray], int]:
        """Token ids of each text (special tokens included), cut to ``max_length``; how many were cut."""
        ids: list[np.ndarray] = []
        truncated = 0
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            chunk = list(texts[start : start + TOKENIZE_CHUNK])
            rows = self.tokenizer(chunk, add_special_tokens=True, verbose=False)["input_ids"]
            long = [i for i, row in enumerate(rows) if len(row) > self.max_length]
            if long:
                # The tokenizer's own truncation keeps the closing special token where the model has one.
                cut = self.tokenizer(
                    [chunk[i] for i in long], truncation=True, max_length=self.max_length
                )["input_ids"]
                for i, row in zip(long, cut):
                    rows[i] = row
                truncated += len(long)
            ids += [np.asarray(row, dtype=np.int32) for row in rows]
        return ids, truncated

    def _collate(self, ids: list[np.ndarray], batch: Batch):
        torch = self._torch
        input_ids = np.full((len(batch.indices), batch.padded_length), self.pad_id, np.int64)
        attention = np.zeros_like(input_ids)
        for row, index in enumerate(batch.indices):
            input_ids[row, : len(ids[index])] = ids[index]
            attention[row, : len(ids[index])] = 1
        tensors = (torch.from_numpy(input_ids), torch.from_numpy(attention))
        if self.device.startswith("cuda"):
            tensors = tuple(t.pin_memory() for t in tensors)
        return tensors

    def _forward(self, input_ids, attention):
        torch = self._torch
        input_ids = input_ids.to(self.device, non_blocking=True)
        attention = attention.to(self.device, non_blocking=True)
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
        with autocast(self.device, dtype):
            hidden = self.model(input_ids=input_ids, attention_mask=attention).last_hidden_state
        hidden = hidden.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.cpu().numpy()

    def encode_unique(self, texts: Sequence[str]) -> Iterator[tuple[list[str], np.ndarray]]:
        """(texts, float32 vectors) batch by batch over the distinct ``texts``; ``report`` when done."""
        torch = self._torch
        started = time.perf_counter()
        unique = sorted(set(texts))
        ids, truncated = self.tokenize(unique)
        lengths = [len(row) for row in ids]
        batches = plan_batches(lengths, self.tokens_per_batch, self.max_length, unique)
        report = EncodeReport(len(unique), sum(lengths), 0, truncated, len(batches))
        log.info(
            "%d distinct texts, %d tokens (%d cut to %d), %d batches of <= %d padded tokens on %s (%s)",
            len(unique),
            report.tokens,
            truncated,
            self.max_length,
            len(batches),
            self.tokens_per_batch,
            self.device,
            self.precision,
        )
        done, last_log = 0, time.perf_counter()
        with torch.inference_mode(), ThreadPoolExecutor(max_workers=1) as worker:
            pending = worker.submit(self._collate, ids, batches[0]) if batches else None
            for number, batch in enumerate(batches):
                tensors = pending.result()
                if number + 1 < len(batches):
                    pending = worker.submit(self._collate, ids, batches[number + 1])
                vectors = self._forward(*tensors)
                report.padded_tokens += batch.padded_tokens
                done += len(batch.indices)
                yield [unique[i] for i in batch.indices], vectors
                now = time.perf_counter()
                if now - last_log >= PROGRESS_SECONDS or number + 1 == len(batches):
                    elapsed = now - started
                    log.info(
                        "encoded %d/%d texts (%.0f%%) in %.1f s: %.1f texts/s",
                        done,
                        len(unique),
                        100 * done / len(unique),
                        elapsed,
                        done / elapsed,
                    )
                    last_log = now
        report.seconds = time.perf_counter() - started
        self.report = report

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 vector per text, in the input order (identical texts share one vector)."""
        result = np.zeros((len(texts), self.dim), dtype=np.float32)
        rows: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            rows.setdefault(text, []).append(i)
        for batch_texts, vectors in self.encode_unique(texts):
            for text, vector in zip(batch_texts, vectors):
                result[rows[text]] = vector
        return result
