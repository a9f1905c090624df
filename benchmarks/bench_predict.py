"""predict: perturbations screened per second, for 1,000 singles on the demo's data and model.

The demo's facet tensor, gene table and facet table are extended with 1,000 genes whose facets are random
unit vectors (the encoder's dimension, 3-6 facets each), then the predict stage runs on all of them as it
runs in the pipeline: every control cell, explanations, the screen table and the AnnData.
"""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dygenept.config_defaults import section_defaults
from dygenept.formats.facet_tensor import FacetTensor, load_facet_tensor, save_facet_tensor
from dygenept.stages.predict import run

from _common import DEMO_OUT, parse_args, report, require, timed

args = parse_args(__doc__)
inputs = {
    "h5ad": DEMO_OUT / "data/dataset.h5ad",
    "split": DEMO_OUT / "data/split.json",
    "genes": DEMO_OUT / "model/genes/genes.tsv",
    "facet_tensor": DEMO_OUT / "model/facet_embed/facet_tensor.safetensors",
    "cell_embedding": DEMO_OUT / "cells/control_embeddings.safetensors",
    "facets": DEMO_OUT / "model/facets/facets.parquet",
    "weights__dygenept__0": DEMO_OUT / "train/dygenept/seed0/model.safetensors",
    "config__dygenept__0": DEMO_OUT / "train/dygenept/seed0/model.json",
}
require(*inputs.values())
torch.set_num_threads(2)
n_new = 100 if args.quick else 1_000
rng = np.random.default_rng(0)
tensor = load_facet_tensor(inputs["facet_tensor"])
n_facets, dim = tensor.embeddings.shape[1:]
names = [f"SYN{i:05d}" for i in range(n_new)]
ids = [f"9{i:08d}" for i in range(n_new)]
vectors = rng.standard_normal((n_new, n_facets, dim)).astype(np.float32)
vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)
mask = np.zeros((n_new, n_facets), dtype=bool)
for row in range(n_new):
    mask[row, rng.choice(n_facets, size=rng.integers(3, 7), replace=False)] = True
vectors[~mask] = 0
extended = FacetTensor(
    np.concatenate([tensor.embeddings, vectors]), np.concatenate([tensor.mask, mask]),
    tensor.entrez_ids + ids, tensor.symbols + names, tensor.facet_ids,
)  # fmt: skip
genes = pd.read_csv(inputs["genes"], sep="\t", dtype=str, keep_default_na=False)
new_genes = pd.DataFrame(
    {"query": names, "symbol": names, "entrez_id": ids, "name": names, "match": "symbol"}
)
facets = pd.read_parquet(inputs["facets"])
new_facets = pd.DataFrame([
    {"entrez_id": ids[g], "symbol": names[g], "facet": facet, "facet_index": k, "is_none": not mask[g, k],
     "text": f"{names[g]} text for {facet}." if mask[g, k] else "NONE", "evidence": []}
    for g in range(n_new) for k, facet in enumerate(tensor.facet_ids)
])  # fmt: skip
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    save_facet_tensor(extended, tmp / "tensor.safetensors", {"model_id": "synthetic"})
    pd.concat([genes, new_genes]).to_csv(tmp / "genes.tsv", sep="\t", index=False)
    pd.concat([facets, new_facets]).to_parquet(tmp / "facets.parquet", index=False)
    # the screen's gene set: the model's genes and the synthetic ones
    screen_inputs = {**inputs, "screen_facet_tensor": tmp / "tensor.safetensors",
                     "genes": tmp / "genes.tsv", "screen_facets": tmp / "facets.parquet"}  # fmt: skip
    outputs = {
        name: tmp / f"out.{name}" for name in ("predictions", "screen", "explanations", "page")
    }
    params = {
        **section_defaults("predict"),
        "perturbations": names,
        "interactions": section_defaults("interactions"),
    }
    del params["file"]
    details, seconds = timed(run, screen_inputs, outputs, params)
report(
    "predict",
    details["predicted"] / seconds,
    "perturbations/s",
    f"{details['predicted']:,} singles never seen in training, 100 control cells each, 500 genes, "
    f"{n_facets} facets × D={dim}; whole stage (load, predict, explain, write) {seconds:.1f} s",
)
