"""Cell encoders on real data: pca (the demo), scVI on the counts of the GEARS-format Norman slice, and
scGPT from a tiny checkpoint in the official layout (the real whole-human vocab.json and args.json),
checked against a hand-written transcription of scGPT's own embedding code."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pytest
import yaml

from dygenept.cell_encoders import scgpt
from dygenept.cell_encoders.pca import pca_embed
from dygenept.data.arrays import dense
from dygenept.data.conditions import CONTROL_KEY
from dygenept.errors import InputError
from dygenept.formats.cell_embedding import load_cell_embedding
from dygenept.stages import cells, dataset

from conftest import DEMO_DATASET_PARAMS, DEMO_H5AD, ROOT

SCHEMA = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())


def schema_defaults(node: dict):
    if node.get("type") == "object" and "properties" in node:
        return {key: schema_defaults(child) for key, child in node["properties"].items()}
    return node.get("default")


def cells_params(encoder: str, **settings) -> dict:
    params = schema_defaults(SCHEMA["properties"]["cells"])
    params["encoder"] = encoder
    params[encoder].update(settings)
    return params


@pytest.fixture(scope="module")
def demo_h5ad(tmp_path_factory):
    """The demo's canonical data (log-normalised only, as the dataset stage writes it)."""
    path = tmp_path_factory.mktemp("demo") / "dataset.h5ad"
    dataset.load_dataset(DEMO_H5AD, DEMO_DATASET_PARAMS).write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def norman_slice(tmp_path_factory, shared_data, org_db):
    """The 50-cell GEARS-format Norman slice through the real dataset stage: raw counts kept in
    layers['counts'], current symbols in var['gene_symbol']."""
    out = tmp_path_factory.mktemp("norman_slice")
    params = schema_defaults(SCHEMA["properties"]["dataset"]) | {
        "perturbation_column": "condition",
        "control_values": ["ctrl"],
        "gene_symbol_column": "feature_name",
        "expression": "auto",
        "de_genes": 5,
        "symbol_overrides": {},
    }
    dataset.run(
        {
            "h5ad": shared_data / "perturbseq" / "scx_norman_subset_50cells.h5ad",
            "org_db": org_db,
            "previous_symbols": ROOT / "resources" / "previous_symbols.tsv",
        },
        {name: out / f"{name}.out" for name in ("h5ad", "split", "de_genes", "card")},
        params,
    )
    return out / "h5ad.out"


def run_cells(h5ad, tmp_path, params, **inputs):
    out = tmp_path / "cells.safetensors"
    details = cells.run({"h5ad": h5ad, **inputs}, {"embeddings": out}, params)
    return load_cell_embedding(out), details


def controls_of(h5ad) -> ad.AnnData:
    adata = ad.read_h5ad(h5ad)
    return adata[adata.obs[CONTROL_KEY].values].copy()


# --- pca -------------------------------------------------------------------------------------------


def test_pca_of_the_demo_controls(demo_h5ad, tmp_path):
    embedding, details = run_cells(demo_h5ad, tmp_path, cells_params("pca"))
    controls = controls_of(demo_h5ad)
    scores, components, mean = pca_embed(dense(controls.X), 50)
    assert embedding.encoder == "pca" and details["control_cells"] == 100
    assert np.array_equal(embedding.embeddings, scores)
    assert np.array_equal(embedding.decoder_weight, components.T)
    # 50 of 99 possible components: the PCA inverse reconstructs the controls closely
    reconstruction = embedding.embeddings @ embedding.decoder_weight.T + embedding.decoder_bias
    residual = np.linalg.norm(reconstruction - dense(controls.X))
    assert residual < 0.75 * np.linalg.norm(dense(controls.X) - mean)


def test_an_unknown_encoder_is_refused(demo_h5ad, tmp_path):
    with pytest.raises(InputError, match="known: \\['pca', 'scgpt', 'scvi'\\]"):
        run_cells(demo_h5ad, tmp_path, {**cells_params("pca"), "encoder": "geneformer"})


# --- scvi ------------------------------------------------------------------------------------------

TINY_SCVI = {"n_latent": 4, "n_hidden": 16, "max_epochs": 5, "device": "cpu"}


def test_scvi_trains_on_the_counts_and_returns_latent_means(norman_slice, tmp_path):
    controls = controls_of(norman_slice)
    assert "counts" in controls.layers  # kept by the dataset stage
    params = cells_params("scvi", **TINY_SCVI)
    embedding, details = run_cells(norman_slice, tmp_path, params)
    assert embedding.encoder == "scvi" and embedding.embeddings.shape == (controls.n_obs, 4)
    assert np.isfinite(embedding.embeddings).all() and embedding.embeddings.std() > 0
    assert embedding.decoder_weight.shape == (controls.n_vars, 4)
    assert details["epochs"] == 5 and np.isfinite(details["final_elbo_train"])
    again, _ = run_cells(norman_slice, tmp_path, params)
    assert np.array_equal(again.embeddings, embedding.embeddings)  # seeded


def test_scvi_refuses_log_normalised_data(demo_h5ad, tmp_path):
    with pytest.raises(InputError, match=r"raw counts \(layers\['counts'\]\).*log-normalised"):
        run_cells(demo_h5ad, tmp_path, cells_params("scvi", **TINY_SCVI))


def test_scvi_refuses_a_counts_layer_that_is_not_counts(norman_slice, tmp_path):
    adata = ad.read_h5ad(norman_slice)
    adata.layers["counts"] = adata.X.copy()  # log-normalised values under the counts name
    adata.write_h5ad(tmp_path / "bad.h5ad")
    with pytest.raises(InputError, match="non-integer"):
        run_cells(tmp_path / "bad.h5ad", tmp_path, cells_params("scvi", **TINY_SCVI))


# --- scgpt -----------------------------------------------------------------------------------------

VOCAB = ROOT.parent / "shared" / "data" / "vocab"
TINY = {"embsize": 16, "nheads": 2, "d_hid": 24, "nlayers": 2}


def tiny_state(ntoken: int, seed: int = 0) -> dict:
    """A state dict named as scGPT's TransformerModel saves it with flash-attn (the published layout):
    encoder, value encoder and transformer layers, plus heads that cell embedding does not use."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    d, h = TINY["embsize"], TINY["d_hid"]

    def tensor(*shape):
        return torch.randn(*shape, generator=generator) * 0.3

    state = {
        "encoder.embedding.weight": tensor(ntoken, d),
        "encoder.enc_norm.weight": 1 + tensor(d),
        "encoder.enc_norm.bias": tensor(d),
        "value_encoder.linear1.weight": tensor(d, 1),
        "value_encoder.linear1.bias": tensor(d),
        "value_encoder.linear2.weight": tensor(d, d),
        "value_encoder.linear2.bias": tensor(d),
        "value_encoder.norm.weight": 1 + tensor(d),
        "value_encoder.norm.bias": tensor(d),
        "decoder.fc.0.weight": tensor(d, d),  # expression decoder: not used for cell embeddings
        "mvc_decoder.gene2query.weight": tensor(d, d),
        "cls_decoder._decoder.0.weight": tensor(d, d),
    }
    for layer in range(TINY["nlayers"]):
        prefix = f"transformer_encoder.layers.{layer}."
        state |= {
            prefix + "self_attn.Wqkv.weight": tensor(3 * d, d),
            prefix + "self_attn.Wqkv.bias": tensor(3 * d),
            prefix + "self_attn.out_proj.weight": tensor(d, d),
            prefix + "self_attn.out_proj.bias": tensor(d),
            prefix + "linear1.weight": tensor(h, d),
            prefix + "linear1.bias": tensor(h),
            prefix + "linear2.weight": tensor(d, h),
            prefix + "linear2.bias": tensor(d),
            prefix + "norm1.weight": 1 + tensor(d),
            prefix + "norm1.bias": tensor(d),
            prefix + "norm2.weight": 1 + tensor(d),
            prefix + "norm2.bias": tensor(d),
        }
    return state


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, shared_data):
    """A tiny checkpoint directory in the official layout: best_model.pt, vocab.json, args.json."""
    import torch

    directory = tmp_path_factory.mktemp("scGPT_tiny")
    vocab = json.loads((VOCAB / "scgpt_whole_human_vocab.json").read_text())
    (directory / "vocab.json").write_text(json.dumps(vocab))
    args = json.loads((VOCAB / "scgpt_whole_human_args.json").read_text()) | TINY
    (directory / "args.json").write_text(json.dumps(args))
    torch.save(tiny_state(len(vocab)), directory / "best_model.pt")
    return directory


def checkpoint_inputs(directory) -> dict:
    return {name: directory / file for name, file in scgpt.CHECKPOINT_FILES.items()}


def reference_embeddings(state, vocab, args, expression, gene_ids, max_length, seed):
    """scGPT's cell embedding written out by hand from its source (tasks/cell_emb.py
    get_batch_cell_embeddings, data_collator.py DataCollator, preprocess.py binning/_digitize,
    model/model.py GeneEncoder, ContinuousValueEncoder, post-norm TransformerEncoderLayer), with the
    random draws taken from the same seeded generator, one cell after the other."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    d, heads = args["embsize"], args["nheads"]
    cls_id, pad_id = vocab["<cls>"], vocab[args["pad_token"]]
    cells_genes, cells_values = [], []
    for row in expression:
        nonzero = np.nonzero(row)[0]
        genes = np.insert(gene_ids[nonzero], 0, cls_id)
        values = np.insert(row[nonzero], 0, args["pad_value"]).astype(np.float32)
        x = values[1:]
        bins = np.quantile(x, np.linspace(0, 1, args["n_bins"] - 1))
        left, right = np.digitize(x, bins), np.digitize(x, bins, right=True)
        values[1:] = np.ceil(rng.random(len(x)) * (right - left) + left)
        if len(genes) > max_length:
            keep = np.concatenate([[0], rng.permutation(len(genes) - 1)[: max_length - 1] + 1])
            genes, values = genes[keep], values[keep]
        cells_genes.append(genes)
        cells_values.append(values)
    length = max(len(g) for g in cells_genes)
    genes = torch.full((len(cells_genes), length), pad_id)
    values = torch.full((len(cells_genes), length), float(args["pad_value"]))
    for i, (g, v) in enumerate(zip(cells_genes, cells_values)):
        genes[i, : len(g)], values[i, : len(v)] = torch.from_numpy(g), torch.from_numpy(v)
    pad = genes.eq(pad_id)

    def layer_norm(x, name):
        return F.layer_norm(x, (d,), state[name + ".weight"], state[name + ".bias"], 1e-5)

    def linear(x, name):
        return x @ state[name + ".weight"].T + state[name + ".bias"]

    src = layer_norm(state["encoder.embedding.weight"][genes], "encoder.enc_norm")
    v = torch.clamp(values.unsqueeze(-1), max=512)
    v = linear(torch.relu(linear(v, "value_encoder.linear1")), "value_encoder.linear2")
    x = src + layer_norm(v, "value_encoder.norm")
    batch, seq = genes.shape
    for layer in range(args["nlayers"]):
        p = f"transformer_encoder.layers.{layer}."
        q, k, w = linear(x, p + "self_attn.Wqkv").chunk(3, dim=-1)
        q, k, w = (t.view(batch, seq, heads, d // heads).transpose(1, 2) for t in (q, k, w))
        scores = q @ k.transpose(-1, -2) / (d // heads) ** 0.5
        scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        attended = (scores.softmax(-1) @ w).transpose(1, 2).reshape(batch, seq, d)
        x = layer_norm(x + linear(attended, p + "self_attn.out_proj"), p + "norm1")
        ff = linear(torch.relu(linear(x, p + "linear1")), p + "linear2")
        x = layer_norm(x + ff, p + "norm2")
    cell = x[:, 0].numpy()
    return cell / np.linalg.norm(cell, axis=1, keepdims=True)


def test_scgpt_matches_scgpts_own_computation_on_real_cells(demo_h5ad, checkpoint):
    import torch

    controls = controls_of(demo_h5ad)[:24]  # 24 K562 control cells × 500 genes of Norman 2019
    model = scgpt.load_scgpt(*checkpoint_inputs(checkpoint).values())
    assert model.ignored_keys == 3  # the decoder heads
    ids, coverage = scgpt.vocabulary_ids(controls.var, model.vocab)
    assert coverage["fraction"] > 0.9, coverage
    known = ids >= 0
    expression = dense(controls.X)[:, known]
    expressed = (expression > 0).sum(axis=1)
    assert expressed.min() >= 8  # so max_length 8 samples genes in every cell
    # log-normalised values repeat within a cell (equal counts): the binning's random tie-breaking is used
    assert any(len(np.unique(row[row > 0])) < (row > 0).sum() / 2 for row in expression)
    for max_length in (1200, 8):
        ours = scgpt.embed_cells(expression, ids[known], model, max_length, 4, seed=7)
        state = torch.load(checkpoint / "best_model.pt", weights_only=True)
        args = json.loads((checkpoint / "args.json").read_text())
        reference = reference_embeddings(
            state, model.vocab, args, expression, ids[known], max_length, seed=7
        )
        assert np.abs(ours - reference).max() < 1e-5, max_length


def test_scgpt_stage_on_the_norman_slice(norman_slice, checkpoint, tmp_path):
    controls = controls_of(norman_slice)
    params = cells_params("scgpt", model_dir=str(checkpoint), device="cpu", batch_size=4)
    embedding, details = run_cells(norman_slice, tmp_path, params, **checkpoint_inputs(checkpoint))
    assert embedding.encoder == "scgpt" and embedding.embeddings.shape == (controls.n_obs, 16)
    assert np.allclose(np.linalg.norm(embedding.embeddings, axis=1), 1.0, atol=1e-5)
    assert embedding.decoder_weight.shape == (controls.n_vars, 16)
    coverage = details["vocabulary_coverage"]
    assert coverage["genes"] == 50 and coverage["in_vocabulary"] >= 45, coverage
    again, _ = run_cells(norman_slice, tmp_path, params, **checkpoint_inputs(checkpoint))
    assert np.array_equal(again.embeddings, embedding.embeddings)  # seeded binning and sampling


def test_scgpt_refuses_low_vocabulary_coverage(norman_slice, checkpoint, tmp_path):
    adata = ad.read_h5ad(norman_slice)
    renamed = [f"NOTAGENE{i}" if i % 2 else name for i, name in enumerate(adata.var_names)]
    adata.var["gene_symbol"] = renamed
    adata.var_names = renamed
    adata.write_h5ad(tmp_path / "renamed.h5ad")
    params = cells_params("scgpt", model_dir=str(checkpoint), device="cpu")
    with pytest.raises(
        InputError, match=r"covers only 23 of 50 genes.*min_vocabulary_coverage.*NOTAGENE1"
    ):
        run_cells(tmp_path / "renamed.h5ad", tmp_path, params, **checkpoint_inputs(checkpoint))


def test_scgpt_without_a_checkpoint_says_where_to_get_one(norman_slice, tmp_path):
    params = cells_params("scgpt", model_dir="resources/models/scGPT_human")
    with pytest.raises(
        InputError, match="best_model.pt, vocab.json, args.json not found.*Model Zoo"
    ):
        run_cells(norman_slice, tmp_path, params)


def test_scgpt_refuses_a_checkpoint_that_does_not_match_its_vocab(checkpoint, tmp_path):
    import torch

    state = tiny_state(1000)  # an embedding for 1,000 tokens beside a 60,697-token vocab.json
    torch.save(state, tmp_path / "best_model.pt")
    with pytest.raises(InputError, match="encoder.embedding.weight: \\(1000, 16\\)"):
        scgpt.load_scgpt(
            tmp_path / "best_model.pt", checkpoint / "vocab.json", checkpoint / "args.json"
        )


@pytest.mark.gpu
def test_scgpt_on_cuda_matches_the_cpu(norman_slice, checkpoint):
    controls = controls_of(norman_slice)
    model = scgpt.load_scgpt(*checkpoint_inputs(checkpoint).values())
    ids, _ = scgpt.vocabulary_ids(controls.var, model.vocab)
    expression = dense(controls.X)[:, ids >= 0]
    cpu = scgpt.embed_cells(expression, ids[ids >= 0], model, 1200, 4, seed=0, device="cpu")
    gpu = scgpt.embed_cells(expression, ids[ids >= 0], model, 1200, 4, seed=0, device="cuda")
    assert (cpu * gpu).sum(axis=1).min() > 0.99
