"""The data stage: read a Perturb-seq AnnData, check it early, and write it in canonical form.

Canonical form: ``obs['condition']`` in GEARS style (``ctrl``, ``A+ctrl``, ``A+B``), ``obs['control']``
bool, log-normalised ``X``; plus the train/test split of perturbations and each perturbation's top DE genes.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import InputError
from .artifacts import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

CONTROL = "ctrl"
CONDITION_KEY = "condition"
CONTROL_KEY = "control"
MAX_LOG_EXPRESSION = 30.0


class DatasetError(InputError):
    """Bad input data, with a message naming the file, the field and the fix."""


# ---- conditions ------------------------------------------------------------------------------


def canonical_condition(raw: str, control_values: Sequence[str], separator: str) -> str:
    """Map a raw perturbation label to GEARS style: ``ctrl``, ``A+ctrl`` or ``A+B`` (the data's gene order)."""
    if raw in control_values:
        return CONTROL
    genes = [part.strip() for part in str(raw).split(separator) if part.strip() and part.strip() not in control_values]
    if not genes:
        return CONTROL
    if len(genes) == 1:
        return f"{genes[0]}+{CONTROL}"
    return "+".join(genes)


def condition_genes(condition: str) -> list[str]:
    return [gene for gene in condition.split("+") if gene != CONTROL]


# ---- checks ----------------------------------------------------------------------------------


def looks_like_counts(matrix) -> bool:
    """Raw counts: every stored value integral and some large. log1p-normalised data is neither."""
    values = matrix.data if sp.issparse(matrix) else np.asarray(matrix).ravel()
    sample = values[: 1_000_000]
    if sample.size == 0:
        return False
    return bool(np.all(np.equal(np.mod(sample, 1), 0)) and sample.max() > MAX_LOG_EXPRESSION)


def check_expression(matrix, path: str, expression: str) -> None:
    values = matrix.data if sp.issparse(matrix) else np.asarray(matrix)
    if not np.all(np.isfinite(values)):
        raise DatasetError(f"{path}: X holds NaN or infinite values. Fix: remove or impute them before running.")
    if np.any(values < 0):
        raise DatasetError(
            f"{path}: X holds negative values (scaled or centred data?). Fix: give log-normalised "
            "expression (sc.pp.normalize_total + sc.pp.log1p), not scaled data."
        )
    if expression == "log_normalized" and looks_like_counts(matrix):
        raise DatasetError(
            f"{path}: X looks like raw counts (integers up to {values.max():.0f}) but config "
            "'dataset.expression' says log_normalized. Fix: set dataset.expression: counts to let DyGenePT "
            "normalise (normalize_total + log1p), or normalise the file yourself."
        )


def check_columns(obs: pd.DataFrame, path: str, columns: dict[str, str]) -> None:
    for field, column in columns.items():
        if column not in obs.columns:
            raise DatasetError(
                f"{path}: obs has no column '{column}' (config 'dataset.{field}'). "
                f"Columns present: {', '.join(map(str, obs.columns))}. Fix: set dataset.{field} to one of them."
            )


# ---- loading ---------------------------------------------------------------------------------


def load_dataset(path: str | Path, params: dict) -> ad.AnnData:
    """Read and validate ``path``; return AnnData in canonical form (see module docstring)."""
    path = str(path)
    if not Path(path).is_file():
        raise DatasetError(f"{path}: file not found. Fix: set config 'dataset.path' to an existing .h5ad.")
    try:
        adata = ad.read_h5ad(path)
    except Exception as error:  # h5py/anndata raise many types for a damaged file
        raise DatasetError(f"{path}: cannot be read as .h5ad ({error}). Fix: check that the file is complete.") from error
    perturbation_column = params["perturbation_column"]
    check_columns(adata.obs, path, {"perturbation_column": perturbation_column})
    for column, value in (params.get("filter") or {}).items():
        check_columns(adata.obs, path, {f"filter.{column}": column})
        adata = adata[adata.obs[column].astype(str) == str(value)].copy()
        if adata.n_obs == 0:
            raise DatasetError(f"{path}: no cell has obs['{column}'] == '{value}' (config 'dataset.filter').")
    control_values = list(params["control_values"])
    raw = adata.obs[perturbation_column].astype(str)
    # An empty label would otherwise read as control and a missing one as a gene called "nan".
    blank = raw.str.replace(params["separator"], "", regex=False).str.strip() == ""
    unlabelled = adata.obs[perturbation_column].isna().values | blank.values
    if unlabelled.any():
        raise DatasetError(
            f"{path}: {int(unlabelled.sum())} cell(s) have an empty or missing obs['{perturbation_column}'] "
            "(neither a control nor a gene). Fix: drop those cells from the file, or label them."
        )
    conditions = raw.map(lambda label: canonical_condition(label, control_values, params["separator"]))
    if not (conditions == CONTROL).any():
        common = ", ".join(raw.value_counts().index[:10])
        raise DatasetError(
            f"{path}: no control cells: no value of obs['{perturbation_column}'] is in "
            f"dataset.control_values={control_values}. Most common values: {common}. "
            "Fix: set dataset.control_values to the label of the control cells."
        )
    if adata.var_names.duplicated().any():
        duplicated = adata.var_names[adata.var_names.duplicated()].unique()[:10].tolist()
        raise DatasetError(f"{path}: duplicate gene names in var: {duplicated}. Fix: make var_names unique.")
    check_expression(adata.X, path, params.get("expression", "log_normalized"))
    if params.get("expression") == "counts":
        import scanpy as sc

        adata.layers["counts"] = adata.X.copy()
        sc.pp.normalize_total(adata)
        sc.pp.log1p(adata)
    adata.obs[CONDITION_KEY] = pd.Categorical(conditions.values)
    adata.obs[CONTROL_KEY] = (conditions == CONTROL).values
    if sp.issparse(adata.X):
        adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    else:
        adata.X = np.asarray(adata.X, dtype=np.float32)
    return adata


# ---- splits ----------------------------------------------------------------------------------

SUBGROUPS = ("combo_seen0", "combo_seen1", "combo_seen2", "unseen_single")


@dataclass(frozen=True)
class Split:
    train: list[str]
    val: list[str]
    test: list[str]
    test_subgroups: dict[str, list[str]]
    val_subgroups: dict[str, list[str]]

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _draw(population: int, fraction: float, seed: int) -> np.ndarray:
    """Indices GEARS' ``np.random.seed(seed); np.random.choice(items, int(n * fraction), replace=False)`` picks."""
    return np.random.RandomState(seed).choice(population, int(population * fraction), replace=False)


def label_subgroups(conditions: Sequence[str], seen_genes: set[str], seen2_in_train: set[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Training conditions and test subgroups, given the seen genes and the combo_seen2 drawn for training."""
    singles = [c for c in conditions if len(condition_genes(c)) == 1]
    combos = [c for c in conditions if len(condition_genes(c)) == 2]
    n_seen = {c: sum(g in seen_genes for g in condition_genes(c)) for c in combos}
    subgroups = {
        "combo_seen0": [c for c in combos if n_seen[c] == 0],
        "combo_seen1": [c for c in combos if n_seen[c] == 1],
        "combo_seen2": [c for c in combos if n_seen[c] == 2 and c not in seen2_in_train],
        "unseen_single": [c for c in singles if condition_genes(c)[0] not in seen_genes],
    }
    train = [c for c in singles if condition_genes(c)[0] in seen_genes] + [c for c in combos if c in seen2_in_train]
    return train, subgroups


def _holdout(conditions: Sequence[str], train_gene_set_size: float, combo_seen2_train_frac: float, seed: int):
    """One GEARS "simulation" hold-out (``DataSplitter.get_simulation_split`` of cell-gears 0.1).

    A share of all perturbed genes (those of doubles included) is drawn as "seen"; singles of seen genes
    train, the others are ``unseen_single``; doubles are ``combo_seen0/1/2`` by their seen genes, and a
    share of combo_seen2 trains. The draws use numpy's legacy ``RandomState(seed)`` on sorted names, as
    GEARS does, so the same seed gives GEARS' split.
    """
    genes = np.unique([g for c in conditions for g in condition_genes(c)])
    seen = set(genes[_draw(len(genes), train_gene_set_size, seed)])
    seen2 = sorted(c for c in conditions if len(condition_genes(c)) == 2 and all(g in seen for g in condition_genes(c)))
    seen2_train = {seen2[i] for i in _draw(len(seen2), combo_seen2_train_frac, seed)}
    train, subgroups = label_subgroups(conditions, seen, seen2_train)
    test = [c for group in SUBGROUPS for c in subgroups[group]]
    return train, test, subgroups


def simulation_split(conditions: Sequence[str], seed: int, train_gene_set_size: float, combo_seen2_train_frac: float) -> Split:
    """GEARS "simulation" split: test hold-out, then a validation hold-out (0.9, 0.9) from training."""
    conditions = sorted(set(conditions) - {CONTROL})
    train, test, test_subgroups = _holdout(conditions, train_gene_set_size, combo_seen2_train_frac, seed)
    train, val, val_subgroups = _holdout(train, 0.9, 0.9, seed)
    return Split(sorted(train), sorted(val), sorted(test),
                 {k: sorted(v) for k, v in test_subgroups.items()}, {k: sorted(v) for k, v in val_subgroups.items()})


# ---- differential expression -----------------------------------------------------------------


def top_de_genes(adata: ad.AnnData, n_genes: int) -> dict[str, list[str]]:
    """Top DE genes of every perturbation against control (t-test, ranked by |score|, as GEARS does)."""
    import scanpy as sc

    groups = [c for c in adata.obs[CONDITION_KEY].cat.categories if c != CONTROL]
    scratch = ad.AnnData(X=adata.X, obs=adata.obs[[CONDITION_KEY]].copy(), var=pd.DataFrame(index=adata.var_names))
    with warnings.catch_warnings():
        # scanpy builds its result frame column by column; pandas warns about that, not about the data.
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        sc.tl.rank_genes_groups(
            scratch, groupby=CONDITION_KEY, groups=groups, reference=CONTROL, method="t-test",
            rankby_abs=True, n_genes=n_genes, use_raw=False,
        )
    names = scratch.uns["rank_genes_groups"]["names"]
    return {group: [str(gene) for gene in names[group]] for group in groups}


# ---- data card ---------------------------------------------------------------------------------

FEW_CELLS = 10


def data_card(adata: ad.AnnData, source: str, params: dict, split: Split) -> dict:
    """What a user checks first: sizes, singles and doubles, cells per perturbation, the expression scale."""
    counts = adata.obs[CONDITION_KEY].value_counts()
    perturbed = counts.drop(CONTROL, errors="ignore")
    genes_per = pd.Series({c: len(condition_genes(c)) for c in perturbed.index}, dtype=int)
    values = adata.X.data if sp.issparse(adata.X) else np.asarray(adata.X).ravel()
    return {
        "source": source,
        "filter": params.get("filter") or {},
        "cells": int(adata.n_obs),
        "genes": int(adata.n_vars),
        "control_cells": int(counts.get(CONTROL, 0)),
        "perturbations": int(len(perturbed)),
        "singles": int((genes_per == 1).sum()),
        "doubles": int((genes_per == 2).sum()),
        "higher_order": sorted(genes_per.index[genes_per > 2]),
        "perturbed_genes": len({g for c in perturbed.index for g in condition_genes(c)}),
        "cells_per_perturbation": {"min": int(perturbed.min()), "median": float(perturbed.median()), "max": int(perturbed.max())}
        if len(perturbed) else {},
        f"perturbations_with_fewer_than_{FEW_CELLS}_cells": sorted(perturbed.index[perturbed < FEW_CELLS]),
        "expression": {"declared": params.get("expression", "log_normalized"), "max": float(values.max()) if values.size else 0.0,
                       "share_zero": float(1 - np.count_nonzero(values) / (adata.n_obs * adata.n_vars))},
        "split": {"train": len(split.train), "val": len(split.val), "test": len(split.test),
                  **{k: len(v) for k, v in split.test_subgroups.items()}},
    }


# ---- stage entry -----------------------------------------------------------------------------


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    adata = load_dataset(inputs["h5ad"], params)
    log.info("%s: %d cells × %d genes, %d perturbations, %d control cells", inputs["h5ad"], adata.n_obs, adata.n_vars,
             adata.obs[CONDITION_KEY].nunique() - 1, int(adata.obs[CONTROL_KEY].sum()))
    split_params = params["split"]
    split = simulation_split(
        adata.obs[CONDITION_KEY].unique().tolist(),
        seed=split_params["seed"],
        train_gene_set_size=split_params["train_gene_set_size"],
        combo_seen2_train_frac=split_params["combo_seen2_train_frac"],
    )
    log.info("split: %d train, %d val, %d test perturbations (test: %s)", len(split.train), len(split.val),
             len(split.test), {k: len(v) for k, v in split.test_subgroups.items()})
    log.info("top %d DE genes of each perturbation against control (t-test)", params["de_genes"])
    de_genes = top_de_genes(adata, params["de_genes"])
    keep = [column for column in (CONDITION_KEY, CONTROL_KEY) if column in adata.obs]
    canonical = ad.AnnData(X=adata.X, obs=adata.obs[keep].copy(), var=pd.DataFrame(index=adata.var_names.astype(str)))
    with atomic_path(outputs["h5ad"]) as tmp:
        canonical.write_h5ad(tmp, compression="gzip")
    write_json_atomic(outputs["split"], split.as_dict())
    write_json_atomic(outputs["de_genes"], de_genes)
    card = data_card(adata, str(inputs["h5ad"]), params, split)
    write_json_atomic(outputs["card"], card)
    return {key: card[key] for key in ("cells", "genes", "control_cells", "perturbations", "singles", "doubles", "split")}
