"""cells: control cells embedded per second by each cell encoder (pca, scvi, scgpt) on the CPU.

pca: exact PCA of log-normalised expression. scvi: scVI training epochs on Poisson counts (the time per
epoch, and the latent means after). scgpt: the whole-human checkpoint's shape (12 layers, 512 wide, 8
heads, 60,697 tokens; random weights cost the same time), frozen, on cells with realistic numbers of
expressed genes (up to max_length 1200 tokens). `--device cuda` runs scvi and scgpt on a GPU.
"""

import argparse
import json

import anndata as ad
import numpy as np
import scipy.sparse as sp

from dygenept.cell_encoders import scgpt, scvi
from dygenept.cell_encoders.pca import pca_embed

from _common import ROOT, machine, timed

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--quick", action="store_true", help="a small run, to check the script works")
parser.add_argument("--device", default="cpu", help="cpu, cuda")
args = parser.parse_args()
rng = np.random.default_rng(0)

# pca
n_cells, n_genes = (1_000, 500) if args.quick else (5_000, 2_000)
expression = np.log1p(rng.poisson(0.5, size=(n_cells, n_genes)).astype(np.float32))
(scores, _, _), seconds = timed(pca_embed, expression, 50, repeat=3)
print(
    f"cells (pca): {n_cells / seconds:,.1f} cells/s  "
    f"[{n_cells:,} cells × {n_genes:,} genes → {scores.shape[1]} components]"
)

# scvi
n_cells, n_genes, epochs = (500, 500, 2) if args.quick else (2_000, 2_000, 10)
counts = sp.csr_matrix(rng.poisson(0.3, size=(n_cells, n_genes)).astype(np.float32))
controls = ad.AnnData(X=counts.copy(), layers={"counts": counts})
settings = {
    "n_latent": 30,
    "n_hidden": 128,
    "n_layers": 1,
    "gene_likelihood": "zinb",
    "max_epochs": epochs,
    "batch_size": 128,
    "use_batch": False,
    "seed": 0,
    "device": args.device,
}
(embedding, _), seconds = timed(
    scvi.encode, controls, {"scvi": settings, "readout_ridge": 1.0}, {"h5ad": "synthetic"}
)
print(
    f"cells (scvi): {n_cells * epochs / seconds:,.1f} cell-epochs/s, {seconds / epochs:.2f} s/epoch  "
    f"[{n_cells:,} cells × {n_genes:,} genes, {epochs} epochs, n_latent 30, incl. set-up and readout]"
)

# scgpt
vocab = json.loads(
    (ROOT.parent / "shared" / "data" / "vocab" / "scgpt_whole_human_vocab.json").read_text()
)
model_args = scgpt.ScGPTArgs(512, 8, 512, 12, 0.2, "<pad>", -2.0, 51, "continuous")
module = scgpt.build_encoder(len(vocab), model_args, vocab["<pad>"]).eval().requires_grad_(False)
model = scgpt.ScGPTModel(module, vocab, model_args, 0)
n_cells, n_genes, expressed = (16, 2_000, 300) if args.quick else (128, 5_000, 1_500)
matrix = np.zeros((n_cells, n_genes), dtype=np.float32)
for row in matrix:  # ~1,500 expressed genes per cell, like a 10x K562 cell in 5,000 HVGs
    genes = rng.choice(n_genes, size=expressed, replace=False)
    row[genes] = np.log1p(rng.poisson(2.0, size=expressed) + 1)
gene_ids = rng.choice(len(vocab) - 3, size=n_genes, replace=False)
_, seconds = timed(scgpt.embed_cells, matrix, gene_ids, model, 1200, 16, 0, args.device)
print(
    f"cells (scgpt): {n_cells / seconds:,.1f} cells/s  [{n_cells} cells, {expressed} expressed genes "
    f"each → 1,200 tokens, whole-human shape (12 × 512), batch 16, {args.device}]"
)
print(f"  machine: {machine()}")
