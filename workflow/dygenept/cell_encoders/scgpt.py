"""``scgpt``: a frozen scGPT checkpoint's cell embedding (the ``<cls>`` token's output), as scGPT computes it.

scGPT (Cui et al. 2024; github.com/bowang-lab/scGPT) ships a checkpoint as a directory with
``best_model.pt`` (a state dict), ``vocab.json`` (gene symbol → token id) and ``args.json`` (the model's
hyperparameters). Its package pins an old torch stack (torchtext), so this module re-implements the
encoder half of ``scgpt.model.TransformerModel`` with the same parameter names, and the input pipeline of
``scgpt.tasks.cell_emb.get_batch_cell_embeddings``:

1. genes are matched to the vocabulary by current symbol (the project's mapping), else the data's name;
2. per cell, the non-zero genes form the sequence, ``<cls>`` first with value ``pad_value``;
3. the values are binned per cell (``scgpt.preprocess.binning``): ``n_bins - 1`` quantile edges of the
   cell's non-zero values, ties spread at random between their edges;
4. cells with more than ``max_length`` tokens keep ``<cls>`` and a random subset of genes; shorter ones
   are padded with ``<pad>`` / ``pad_value``;
5. ``h = TransformerEncoder(LayerNorm(Embedding(gene)) + ContinuousValueEncoder(value))`` with the padding
   masked; the cell embedding is ``h[:, 0]``, L2-normalised.

Binning of the non-zero values is invariant to per-cell scaling and log1p, so log-normalised ``X`` gives
the same tokens as raw counts. The random draws come from one seeded generator, so a run is repeatable.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np

from ..data.arrays import dense
from ..devices import autocast, resolve_device
from ..errors import InputError
from ..formats.cell_embedding import CellEmbedding
from ..registry import CELL_ENCODERS
from ..settings import read_fields
from .base import linear_readout

log = logging.getLogger(__name__)

PAD, CLS, EOC = "<pad>", "<cls>", "<eoc>"
PROGRESS_SECONDS = 10.0
SYMBOL_COLUMN = "gene_symbol"
# The stage's inputs (rule cells declares them when config 'cells.scgpt.model_dir' holds them).
CHECKPOINT_FILES = CELL_ENCODERS["scgpt"].checkpoint
ENCODER_PREFIXES = ("encoder.", "value_encoder.", "transformer_encoder.")
# flash-attn checkpoints (the published ones) name the packed projection Wqkv; torch's MHA in_proj_.
RENAMES = (
    (re.compile(r"self_attn\.(_impl\.)?Wqkv\."), "self_attn.in_proj_"),
    (re.compile(r"self_attn\._impl\.out_proj\."), "self_attn.out_proj."),
)


@dataclass(frozen=True)
class ScGPTArgs:
    """The hyperparameters of ``args.json`` that the encoder needs."""

    embsize: int
    nheads: int
    d_hid: int
    nlayers: int
    dropout: float
    pad_token: str
    pad_value: float
    n_bins: int
    input_emb_style: str

    @classmethod
    def read(cls, path: Path) -> ScGPTArgs:
        try:
            raw = json.loads(Path(path).read_text())
            args = cls(
                int(raw["embsize"]),
                int(raw["nheads"]),
                int(raw["d_hid"]),
                int(raw["nlayers"]),
                float(raw["dropout"]),
                str(raw["pad_token"]),
                float(raw["pad_value"]),
                int(raw["n_bins"]),
                str(raw.get("input_emb_style", "continuous")),  # scGPT's own default
            )
        except (OSError, ValueError, KeyError) as error:
            raise InputError(
                f"{path}: not a scGPT args.json ({error!r}). Fix: config 'cells.scgpt.model_dir' must hold "
                "the checkpoint's args.json, vocab.json and best_model.pt."
            ) from error
        if args.input_emb_style != "continuous":
            raise InputError(
                f"{path}: input_emb_style {args.input_emb_style}; only 'continuous' (the pretrained "
                "whole-human and organ models) is implemented. Fix: use such a checkpoint."
            )
        return args


def read_vocab(path: Path) -> dict[str, int]:
    """``vocab.json`` (token → id) with the special tokens scGPT appends when they are missing."""
    try:
        vocab = {
            str(token): int(index) for token, index in json.loads(Path(path).read_text()).items()
        }
    except (OSError, ValueError, AttributeError) as error:
        raise InputError(f"{path}: not a scGPT vocab.json ({error!r}).") from error
    for token in (PAD, CLS, EOC):
        if token not in vocab:
            vocab[token] = len(vocab)
    return vocab


def build_encoder(ntoken: int, args: ScGPTArgs, pad_id: int):
    """scGPT's encoder modules under scGPT's own attribute names (so its state dict loads as is)."""
    import torch
    from torch import nn

    class GeneEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(ntoken, args.embsize, padding_idx=pad_id)
            self.enc_norm = nn.LayerNorm(args.embsize)

        def forward(self, genes):
            return self.enc_norm(self.embedding(genes))

    class ContinuousValueEncoder(nn.Module):
        max_value = 512

        def __init__(self):
            super().__init__()
            self.dropout = nn.Dropout(args.dropout)
            self.linear1 = nn.Linear(1, args.embsize)
            self.activation = nn.ReLU()
            self.linear2 = nn.Linear(args.embsize, args.embsize)
            self.norm = nn.LayerNorm(args.embsize)

        def forward(self, values):
            x = torch.clamp(values.unsqueeze(-1), max=self.max_value)
            x = self.linear2(self.activation(self.linear1(x)))
            return self.dropout(self.norm(x))

    class ScGPTEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = GeneEncoder()
            self.value_encoder = ContinuousValueEncoder()
            layer = nn.TransformerEncoderLayer(
                args.embsize, args.nheads, args.d_hid, args.dropout, batch_first=True
            )
            self.transformer_encoder = nn.TransformerEncoder(
                layer, args.nlayers, enable_nested_tensor=False
            )

        def forward(self, genes, values, padding):
            """(batch, seq) gene ids, values, padding mask (True = pad) → (batch, seq, embsize)."""
            total = self.encoder(genes) + self.value_encoder(values)
            return self.transformer_encoder(total, src_key_padding_mask=padding)

    return ScGPTEncoder()


def encoder_state(checkpoint: dict, path: Path) -> dict:
    """The encoder's tensors of a scGPT state dict, flash-attn names mapped to torch's."""
    state = {}
    for key, value in checkpoint.items():
        for pattern, replacement in RENAMES:
            key = pattern.sub(replacement, key)
        if key.startswith(ENCODER_PREFIXES):
            state[key] = value
    if not state:
        raise InputError(
            f"{path}: no scGPT encoder weights (keys starting {', '.join(ENCODER_PREFIXES)}). "
            "Fix: give the checkpoint's best_model.pt (a state dict)."
        )
    return state


@dataclass
class ScGPTModel:
    module: object  # the torch module from build_encoder
    vocab: dict[str, int]
    args: ScGPTArgs
    ignored_keys: int  # decoder heads etc. that cell embedding does not use

    @property
    def pad_id(self) -> int:
        return self.vocab[self.args.pad_token]


def load_scgpt(weights: Path, vocab_path: Path, args_path: Path) -> ScGPTModel:
    """Load an official scGPT checkpoint (``best_model.pt``, ``vocab.json``, ``args.json``), frozen, on CPU."""
    import torch

    args = ScGPTArgs.read(args_path)
    vocab = read_vocab(vocab_path)
    if args.pad_token not in vocab:
        raise InputError(f"{vocab_path}: the pad token {args.pad_token} is missing.")
    try:
        checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated file, a pickle with code, not a torch file
        raise InputError(
            f"{weights}: cannot load as a state dict with weights_only=True ({error}). "
            "Fix: download the checkpoint's best_model.pt again."
        ) from error
    state = encoder_state(checkpoint, weights)
    module = build_encoder(len(vocab), args, vocab[args.pad_token])
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    wrong = sorted(k for k in expected if k in state and state[k].shape != expected[k].shape)
    if missing or wrong:
        detail = (
            f"missing {missing[:5]}"
            if missing
            else f"shape of {wrong[0]}: {tuple(state[wrong[0]].shape)} "
            f"in the checkpoint, {tuple(expected[wrong[0]].shape)} from args.json and vocab.json"
        )
        raise InputError(
            f"{weights}: does not match args.json / vocab.json beside it ({detail}). "
            "Fix: keep the three files of one checkpoint together."
        )
    module.load_state_dict({k: state[k] for k in expected})
    module.eval().requires_grad_(False)
    ignored = len(checkpoint) - len(expected)
    return ScGPTModel(module, vocab, args, ignored)


def vocabulary_ids(var, vocab: dict[str, int]) -> tuple[np.ndarray, dict]:
    """Token id per gene (-1: not in the vocabulary), by current symbol, else the data's own name."""
    names = var.index.astype(str).tolist()
    symbols = var[SYMBOL_COLUMN].astype(str).tolist() if SYMBOL_COLUMN in var else names
    ids = np.full(len(names), -1, dtype=np.int64)
    by_symbol = by_name = 0
    for i, (symbol, name) in enumerate(zip(symbols, names)):
        if symbol in vocab:
            ids[i], by_symbol = vocab[symbol], by_symbol + 1
        elif name in vocab:
            ids[i], by_name = vocab[name], by_name + 1
    missing = [names[i] for i in np.flatnonzero(ids < 0)]
    coverage = {
        "genes": len(names),
        "in_vocabulary": by_symbol + by_name,
        "fraction": round((by_symbol + by_name) / max(len(names), 1), 4),
        "by_current_symbol": by_symbol,
        "by_data_name": by_name,
        "missing": len(missing),
        "missing_examples": missing[:20],
    }
    return ids, coverage


def digitize(x: np.ndarray, bins: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """scGPT's ``_digitize(side="both")``: a value on a run of equal edges lands uniformly among them."""
    left = np.digitize(x, bins)
    right = np.digitize(x, bins, right=True)
    return np.ceil(rng.random(len(x)) * (right - left) + left).astype(np.int64)


def bin_values(values: np.ndarray, n_bins: int, rng: np.random.Generator) -> np.ndarray:
    """scGPT's ``binning`` of one cell's expressed (non-zero) values into 1..n_bins-1."""
    if values.size == 0:
        return np.zeros(0, dtype=np.float32)
    bins = np.quantile(values, np.linspace(0, 1, n_bins - 1))
    return digitize(values, bins, rng).astype(np.float32)


def tokenize_cell(
    row: np.ndarray,
    gene_ids: np.ndarray,
    model: ScGPTModel,
    max_length: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One cell's (gene ids, binned values): ``<cls>`` first, then its expressed genes, sampled to fit."""
    expressed = np.flatnonzero(row)
    genes = np.concatenate([[model.vocab[CLS]], gene_ids[expressed]])
    values = np.concatenate(
        [[model.args.pad_value], bin_values(row[expressed], model.args.n_bins, rng)]
    ).astype(np.float32)
    if len(genes) > max_length:
        keep = np.concatenate([[0], rng.permutation(len(genes) - 1)[: max_length - 1] + 1])
        genes, values = genes[keep], values[keep]
    return genes, values


def pad_batch(cells: list[tuple[np.ndarray, np.ndarray]], pad_id: int, pad_value: float):
    length = max(len(genes) for genes, _ in cells)
    genes = np.full((len(cells), length), pad_id, dtype=np.int64)
    values = np.full((len(cells), length), pad_value, dtype=np.float32)
    for row, (cell_genes, cell_values) in enumerate(cells):
        genes[row, : len(cell_genes)] = cell_genes
        values[row, : len(cell_values)] = cell_values
    return genes, values


def embed_cells(
    expression: np.ndarray,
    gene_ids: np.ndarray,
    model: ScGPTModel,
    max_length: int,
    batch_size: int,
    seed: int,
    device: str = "cpu",
) -> np.ndarray:
    """L2-normalised ``<cls>`` embeddings (cells, embsize) of ``expression`` (cells, genes in vocab)."""
    import torch

    rng = np.random.default_rng(seed)
    model.module.to(device)
    # scGPT embeds under CUDA autocast (fp16); on the CPU it runs in float32.
    dtype = torch.float16 if device.startswith("cuda") else None
    result = np.zeros((expression.shape[0], model.args.embsize), dtype=np.float32)
    last_log = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, expression.shape[0], batch_size):
            rows = expression[start : start + batch_size]
            cells = [tokenize_cell(row, gene_ids, model, max_length, rng) for row in rows]
            genes, values = pad_batch(cells, model.pad_id, model.args.pad_value)
            genes_t = torch.from_numpy(genes).to(device)
            with autocast(device, dtype):
                hidden = model.module(
                    genes_t, torch.from_numpy(values).to(device), genes_t.eq(model.pad_id)
                )
            result[start : start + len(rows)] = hidden[:, 0].float().cpu().numpy()
            done = start + len(rows)
            if time.perf_counter() - last_log >= PROGRESS_SECONDS or done == expression.shape[0]:
                log.info("embedded %d/%d cells", done, expression.shape[0])
                last_log = time.perf_counter()
    return result / np.linalg.norm(result, axis=1, keepdims=True)


@dataclass(frozen=True)
class ScgptSettings:
    model_dir: str | None
    max_length: int
    batch_size: int
    min_vocabulary_coverage: float
    seed: int
    device: str
    readout_ridge: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ScgptSettings:
        """From the validated ``cells`` section (``scgpt``, ``readout_ridge``)."""
        return read_fields(cls, params["scgpt"], readout_ridge=params["readout_ridge"])


def encode(
    controls: ad.AnnData, settings: ScgptSettings, inputs: dict[str, Path]
) -> tuple[CellEmbedding, dict]:
    missing = [file for name, file in CHECKPOINT_FILES.items() if name not in inputs]
    if missing:
        raise InputError(
            f"config 'cells.scgpt.model_dir' = {settings.model_dir}: {', '.join(missing)} not found. "
            "Fix: download a pretrained checkpoint (the whole-human model: github.com/bowang-lab/scGPT, "
            "'Pretrained scGPT Model Zoo') and put its best_model.pt, vocab.json and args.json there."
        )
    model = load_scgpt(inputs["scgpt_weights"], inputs["scgpt_vocab"], inputs["scgpt_args"])
    gene_ids, coverage = vocabulary_ids(controls.var, model.vocab)
    log.info(
        "scGPT vocabulary covers %d of %d genes (%.1f%%): %d by current symbol, %d by the data's name",
        coverage["in_vocabulary"],
        coverage["genes"],
        100 * coverage["fraction"],
        coverage["by_current_symbol"],
        coverage["by_data_name"],
    )
    if coverage["fraction"] < settings.min_vocabulary_coverage:
        raise InputError(
            f"{inputs['h5ad']}: the scGPT vocabulary ({inputs['scgpt_vocab']}) covers only "
            f"{coverage['in_vocabulary']} of {coverage['genes']} genes ({100 * coverage['fraction']:.1f}%), "
            f"below config 'cells.scgpt.min_vocabulary_coverage' = {settings.min_vocabulary_coverage}; "
            f"not covered e.g. {', '.join(coverage['missing_examples'][:10])}. Fix: check the gene names "
            "(dataset.gene_symbol_column, genes.symbol_overrides), or lower the threshold knowingly."
        )
    device = resolve_device(settings.device, "cells.scgpt.device")
    known = gene_ids >= 0
    expression = dense(controls.X)
    embeddings = embed_cells(
        expression[:, known],
        gene_ids[known],
        model,
        settings.max_length,
        settings.batch_size,
        settings.seed,
        device,
    )
    weight, bias = linear_readout(embeddings, expression, settings.readout_ridge)
    embedding = CellEmbedding(
        embeddings, controls.obs_names.astype(str).tolist(), "scgpt", weight, bias
    )
    return embedding, {
        "device": device,
        "vocabulary_coverage": coverage,
        "embsize": model.args.embsize,
        "nlayers": model.args.nlayers,
        "checkpoint_keys_unused": model.ignored_keys,
    }
