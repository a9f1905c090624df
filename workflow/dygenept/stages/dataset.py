"""The data stage: read a Perturb-seq AnnData, check it early, and write it in canonical form.

Canonical form: ``obs['condition']`` in GEARS style (``ctrl``, ``A+ctrl``, ``A+B``), ``obs['control']``
bool (and ``obs['batch']`` when the config names a batch column), log-normalised ``X`` (raw counts kept in
``layers['counts']``), ``var`` indexed by the data's gene names with ``gene_symbol`` (current symbol) and
``entrez_id`` from org.Hs.eg.db — the mapping the genes stage uses for perturbation targets; plus the
split of perturbations, each perturbation's top DE genes, and a data card.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data.conditions import (
    CONDITION_KEY,
    CONTEXT_KEY,
    CONTROL,
    CONTROL_KEY,
    canonical_condition,
    condition_genes,
    context_label,
    looks_like_control,
    unify_gene_order,
)
from ..data.splits import Split, SplitSettings, make_split
from ..data.symbols import SymbolIndex, map_symbol
from ..errors import InputError
from ..io.artifacts import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

# log1p of normalised counts stays far below this; integral data above it can only be counts.
MAX_LOG_EXPRESSION = 30.0
BATCH_KEY = "batch"
# Characters that join genes in other tools' labels (scPerturb writes A_B, GEARS A+B).
SEPARATOR_CANDIDATES = ("+", "_", ",", ";", "|", "/")


class DatasetError(InputError):
    """Bad input data, with a message naming the file, the field and the fix."""


# ---- checks ----------------------------------------------------------------------------------


def _stored_values(matrix) -> np.ndarray:
    return matrix.data if sp.issparse(matrix) else np.asarray(matrix).ravel()


def looks_like_counts(matrix) -> bool:
    """Raw counts: every stored value integral. log1p-normalised data has (almost) no integral non-zeros."""
    sample = _stored_values(matrix)[:1_000_000]
    sample = sample[sample != 0]
    return bool(sample.size and np.all(np.equal(np.mod(sample, 1), 0)))


def resolve_expression(matrix, path: str, declared: str) -> str:
    """``counts`` or ``log_normalized``: what X holds, checked against (or, for ``auto``, read from) the config."""
    values = _stored_values(matrix)
    if not np.all(np.isfinite(values)):
        raise DatasetError(
            f"{path}: X holds NaN or infinite values. Fix: remove or impute them before running."
        )
    if np.any(values < 0):
        raise DatasetError(
            f"{path}: X holds negative values (scaled or centred data?). Fix: give log-normalised "
            "expression (sc.pp.normalize_total + sc.pp.log1p) or raw counts, not scaled data."
        )
    counts = looks_like_counts(matrix)
    if declared == "log_normalized" and counts and values.max() <= MAX_LOG_EXPRESSION:
        log.warning(
            "%s: X holds only integers (max %.0f) yet is declared log_normalized; taken as declared.",
            path,
            values.max(),
        )
        return declared
    if declared == "log_normalized" and counts:
        raise DatasetError(
            f"{path}: X looks like raw counts (integers up to {values.max():.0f}) but config "
            "'dataset.expression' says log_normalized. Fix: set dataset.expression: counts (or auto) to let "
            "DyGenePT normalise (normalize_total + log1p), or normalise the file yourself."
        )
    if declared == "counts" and not counts:
        raise DatasetError(
            f"{path}: config 'dataset.expression' says counts, but X is not integral counts (max "
            f"{values.max() if values.size else 0:.2f}, non-integer values). Fix: set dataset.expression: "
            "log_normalized (or auto) if X is already normalised."
        )
    return "counts" if counts else "log_normalized"


def check_columns(
    frame: pd.DataFrame, path: str, columns: dict[str, str], where: str = "obs"
) -> None:
    for field, column in columns.items():
        if column not in frame.columns:
            raise DatasetError(
                f"{path}: {where} has no column '{column}' (config 'dataset.{field}'). "
                f"Columns present: {', '.join(map(str, frame.columns))}. Fix: set dataset.{field} to one of them."
            )


def check_separator(
    labels: pd.Series, path: str, column: str, separator: str, control_values: list[str]
) -> None:
    """Combinations written with another separator would read as one gene called 'A_B': stop early."""
    perturbed = labels[~labels.isin(control_values)].unique()
    if any(separator in label for label in perturbed):
        return
    for candidate in SEPARATOR_CANDIDATES:
        joined = [label for label in perturbed if candidate != separator and candidate in label]
        if joined:
            raise DatasetError(
                f"{path}: no value of obs['{column}'] contains the separator '{separator}' (config "
                f"'dataset.separator'), but {len(joined)} contain '{candidate}' (e.g. {', '.join(joined[:3])}). "
                f"Fix: set dataset.separator: '{candidate}'."
            )


def check_control_labels(
    labels: pd.Series, path: str, column: str, separator: str, control_values: list[str]
) -> None:
    """Control cells under a label config does not name (half the controls called 'non-targeting' where
    config says 'control') would become a perturbation of a gene called 'non-targeting': stop early."""
    counts = labels.value_counts()
    odd = {
        label: int(n)
        for label, n in counts.items()
        if label not in control_values
        and any(
            looks_like_control(part) and part.strip() not in control_values
            for part in label.split(separator)
        )
    }
    if not odd:
        return
    named = int(counts[counts.index.isin(control_values)].sum())
    listed = ", ".join(
        f"'{label}' ({n} cells)" for label, n in sorted(odd.items(), key=lambda x: -x[1])
    )
    parts = sorted(
        {p.strip() for label in odd for p in label.split(separator) if looks_like_control(p)}
    )
    raise DatasetError(
        f"{path}: {sum(odd.values())} cell(s) of obs['{column}'] carry a control label that config "
        f"'dataset.control_values' {control_values} ({named} cells) does not name: {listed}. They would be "
        f"read as perturbations of a gene called '{parts[0]}'. Fix: name every control label, e.g. "
        f"dataset.control_values: [{', '.join([*control_values, *parts])}] (or leave those cells out "
        "with dataset.filter)."
    )


def read_h5ad(path: str) -> ad.AnnData:
    file = Path(path)
    if not file.is_file():
        raise DatasetError(
            f"{path}: file not found. Fix: set config 'dataset.path' to an existing .h5ad."
        )
    if file.stat().st_size == 0:
        raise DatasetError(f"{path}: the file is empty (0 bytes). Fix: download or copy it again.")
    try:
        return ad.read_h5ad(path)
    except Exception as error:  # h5py/anndata raise many types for a damaged file
        raise DatasetError(
            f"{path}: cannot be read as .h5ad ({type(error).__name__}: {error}). The file is truncated or not "
            "an AnnData file. Fix: download it again (or check the copy is complete)."
        ) from error


# ---- loading ---------------------------------------------------------------------------------


def gene_names(adata: ad.AnnData, path: str, symbol_column: str | None) -> pd.Index:
    """The data's gene names: a var column when the config names one (e.g. symbols beside Ensembl ids)."""
    if symbol_column:
        check_columns(adata.var, path, {"gene_symbol_column": symbol_column}, where="var")
        names = pd.Index(adata.var[symbol_column].astype(str))
    else:
        names = pd.Index(adata.var_names.astype(str))
    duplicated = names[names.duplicated()].unique()
    if len(duplicated):
        where = f"var['{symbol_column}']" if symbol_column else "var_names"
        raise DatasetError(
            f"{path}: {len(duplicated)} duplicate gene name(s) in {where}, e.g. {', '.join(duplicated[:10])}. "
            "Fix: make them unique (adata.var_names_make_unique()) or set dataset.gene_symbol_column to a unique column."
        )
    return names


def read_conditions(obs: pd.DataFrame, path: str, params: dict) -> pd.Series:
    """Each cell's GEARS-style condition, after the label checks (blank labels, separator, controls)."""
    column = params["perturbation_column"]
    control_values = list(params["control_values"])
    separator = params["separator"]
    raw = obs[column].astype(str)
    # An empty label would otherwise read as control and a missing one as a gene called "nan".
    blank = raw.str.replace(separator, "", regex=False).str.strip() == ""
    unlabelled = obs[column].isna().values | blank.values
    if unlabelled.any():
        raise DatasetError(
            f"{path}: {int(unlabelled.sum())} cell(s) have an empty or missing obs['{column}'] "
            "(neither a control nor a gene). Fix: drop those cells from the file, or label them."
        )
    check_separator(raw, path, column, separator, control_values)
    check_control_labels(raw, path, column, separator, control_values)
    labels = raw.unique()
    canonical = {label: canonical_condition(label, control_values, separator) for label in labels}
    same_genes = unify_gene_order(list(canonical.values()))
    reordered = sorted({name for name, first in same_genes.items() if name != first})
    if reordered:
        log.warning(
            "%s: %d condition(s) name the genes of another in a different order and are merged with it: %s",
            path,
            len(reordered),
            ", ".join(f"{name} → {same_genes[name]}" for name in reordered[:10]),
        )
    canonical = {label: same_genes[condition] for label, condition in canonical.items()}
    conditions = raw.map(canonical)
    if not (conditions == CONTROL).any():
        common = ", ".join(raw.value_counts().index[:10])
        raise DatasetError(
            f"{path}: no control cells: no value of obs['{column}'] is in "
            f"dataset.control_values={control_values}. Most common values: {common}. "
            "Fix: set dataset.control_values to the label of the control cells."
        )
    return conditions


def with_contexts(obs: pd.DataFrame, source: pd.DataFrame, path: str, column: str) -> pd.DataFrame:
    """Each perturbed cell's condition labelled with its context (``A+ctrl|K562``), and the context
    column; every context needs control cells, since its perturbations are measured against them."""
    check_columns(source, path, {"split.context_column": column})
    contexts = source[column].astype(str).to_numpy()
    controls = obs[CONTROL_KEY].to_numpy()
    without_controls = sorted(set(contexts) - set(contexts[controls]))
    if without_controls:
        raise DatasetError(
            f"{path}: obs['{column}'] value(s) {without_controls} have no control cells (config "
            "'dataset.split.context_column'); each context's perturbations are measured against its "
            "own controls. Fix: leave those contexts out (dataset.filter) or add their control cells."
        )
    labels = [
        condition if is_control else context_label(condition, context)
        for condition, context, is_control in zip(obs[CONDITION_KEY], contexts, controls)
    ]
    return obs.assign(
        **{CONDITION_KEY: pd.Categorical(labels), CONTEXT_KEY: pd.Categorical(contexts)}
    )


def load_dataset(path: str | Path, params: dict) -> ad.AnnData:
    """Read and validate ``path``; return AnnData in canonical form (see module docstring)."""
    path = str(path)
    adata = read_h5ad(path)
    column = params["perturbation_column"]
    check_columns(adata.obs, path, {"perturbation_column": column})
    batch_column = params["batch_column"]
    if batch_column:
        check_columns(adata.obs, path, {"batch_column": batch_column})
    for filter_column, value in params["filter"].items():
        check_columns(adata.obs, path, {f"filter.{filter_column}": filter_column})
        adata = adata[adata.obs[filter_column].astype(str) == str(value)].copy()
        if adata.n_obs == 0:
            raise DatasetError(
                f"{path}: no cell has obs['{filter_column}'] == '{value}' (config 'dataset.filter')."
            )
    conditions = read_conditions(adata.obs, path, params)
    names = gene_names(adata, path, params["gene_symbol_column"])
    expression = resolve_expression(adata.X, path, params["expression"])
    counts = adata.layers.get("counts")
    matrix = (
        sp.csr_matrix(adata.X, dtype=np.float32)
        if sp.issparse(adata.X)
        else np.asarray(adata.X, dtype=np.float32)
    )
    obs = pd.DataFrame(
        {
            CONDITION_KEY: pd.Categorical(conditions.values),
            CONTROL_KEY: (conditions == CONTROL).values,
        },
        index=adata.obs_names.astype(str),
    )
    if batch_column:
        obs[BATCH_KEY] = pd.Categorical(adata.obs[batch_column].astype(str).values)
    if params["split"]["kind"] == "context":
        if not params["split"]["context_column"]:
            raise DatasetError(
                f"{path}: config 'dataset.split.kind' is context but 'dataset.split.context_column' "
                f"is empty. Fix: name the obs column of each cell's context; columns present: "
                f"{', '.join(map(str, adata.obs.columns))}."
            )
        obs = with_contexts(obs, adata.obs, path, params["split"]["context_column"])
    var = pd.DataFrame({"feature_id": adata.var_names.astype(str)}, index=names)
    result = ad.AnnData(X=matrix, obs=obs, var=var)
    result.uns["expression_in_file"] = expression
    if expression == "counts":
        import scanpy as sc

        result.layers["counts"] = matrix.copy()
        sc.pp.normalize_total(result)
        sc.pp.log1p(result)
    elif counts is not None:
        result.layers["counts"] = counts
    return result


# ---- genes -----------------------------------------------------------------------------------


def harmonise_genes(
    names: pd.Index, index: SymbolIndex, overrides: dict[str, str]
) -> tuple[pd.DataFrame, dict]:
    """Current symbol and Entrez id of every measured gene, with what could not be mapped and why."""
    rows, unmapped = [], {}
    for name in names:
        mapping = map_symbol(name, index, overrides)
        if mapping.entrez_id is None or mapping.entrez_id not in index.records:
            reason = (
                f"ambiguous alias of {', '.join(index.records[c].symbol for c in mapping.candidates)}"
                if mapping.candidates
                else "not a symbol or alias in org.Hs.eg.db"
            )
            unmapped[name] = reason
            rows.append((name, name, "", ""))
        else:
            rows.append(
                (name, index.records[mapping.entrez_id].symbol, mapping.entrez_id, mapping.match)
            )
    table = pd.DataFrame(rows, columns=["name", "gene_symbol", "entrez_id", "match"]).set_index(
        "name"
    )
    mapped = table[table["entrez_id"] != ""]
    shared = mapped[mapped.duplicated("entrez_id", keep=False)]
    collisions = {entrez: sorted(group.index) for entrez, group in shared.groupby("entrez_id")}
    renamed = {name: row.gene_symbol for name, row in mapped.iterrows() if row.gene_symbol != name}
    report = {
        "measured": len(table),
        "mapped": len(mapped),
        "by_match": mapped["match"].value_counts().to_dict(),
        "unmapped": unmapped,
        "renamed": renamed,
        "collisions": collisions,
    }
    return table, report


def vocabulary_coverage(
    symbols: list[str], perturbed: list[str], vocabulary_path: str | Path
) -> dict:
    """Share of measured and perturbed genes a cell-encoder vocabulary (scGPT ``vocab.json``: token → id) knows."""
    try:
        vocabulary = set(json.loads(Path(vocabulary_path).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as error:
        raise DatasetError(
            f"{vocabulary_path}: cannot read the vocabulary JSON ({error}). Fix: config 'dataset.vocabulary'."
        ) from error
    missing_perturbed = sorted(g for g in perturbed if g not in vocabulary)
    return {
        "vocabulary": str(vocabulary_path),
        "measured_in_vocabulary": sum(s in vocabulary for s in symbols),
        "measured": len(symbols),
        "perturbed_in_vocabulary": len(perturbed) - len(missing_perturbed),
        "perturbed": len(perturbed),
        "perturbed_missing": missing_perturbed,
    }


def select_hvg(adata: ad.AnnData, n_top_genes: int, keep: set[str]) -> ad.AnnData:
    """Highly variable genes (scanpy, Seurat flavour on log data), always keeping the perturbed genes measured."""
    import scanpy as sc

    if n_top_genes >= adata.n_vars:
        return adata
    batch_key = BATCH_KEY if BATCH_KEY in adata.obs else None
    hvg = sc.pp.highly_variable_genes(
        adata, n_top_genes=n_top_genes, flavor="seurat", batch_key=batch_key, inplace=False
    )
    selected = np.asarray(hvg["highly_variable"].values, dtype=bool) | adata.var_names.isin(
        list(keep)
    )
    return adata[:, selected].copy()


# ---- differential expression -----------------------------------------------------------------


def top_de_genes(adata: ad.AnnData, n_genes: int) -> dict[str, list[str]]:
    """Top DE genes of every perturbation against control (t-test, ranked by |score|, as GEARS does);
    in data with contexts, against the controls of the perturbation's own context.

    A perturbation with a single cell has no variance to test: it gets no DE genes (the card lists it).
    """
    if CONTEXT_KEY not in adata.obs:
        return de_against_controls(adata, n_genes)
    return {
        label: genes
        for context in adata.obs[CONTEXT_KEY].cat.categories
        for label, genes in de_against_controls(
            adata[(adata.obs[CONTEXT_KEY] == context).to_numpy()], n_genes
        ).items()
    }


def de_against_controls(adata: ad.AnnData, n_genes: int) -> dict[str, list[str]]:
    """Top DE genes of every perturbation of ``adata`` against its control cells."""
    import scanpy as sc

    sizes = adata.obs[CONDITION_KEY].value_counts()
    groups = [c for c in adata.obs[CONDITION_KEY].cat.categories if c != CONTROL and sizes[c] >= 2]
    if not groups:
        return {}
    obs = adata.obs[[CONDITION_KEY]].copy()
    obs[CONDITION_KEY] = obs[CONDITION_KEY].cat.remove_unused_categories()
    scratch = ad.AnnData(X=adata.X, obs=obs, var=pd.DataFrame(index=adata.var_names))
    with warnings.catch_warnings():
        # scanpy builds its result frame column by column; pandas warns about that, not about the data.
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        sc.tl.rank_genes_groups(
            scratch,
            groupby=CONDITION_KEY,
            groups=groups,
            reference=CONTROL,
            method="t-test",
            rankby_abs=True,
            n_genes=n_genes,
            use_raw=False,
        )
    names = scratch.uns["rank_genes_groups"]["names"]
    return {group: [str(gene) for gene in names[group]] for group in groups}


# ---- data card ---------------------------------------------------------------------------------

FEW_CELLS = 10


def target_report(
    conditions, index: SymbolIndex, overrides: dict[str, str], measured: pd.Index
) -> dict:
    """Perturbation targets: renamed to current symbols, not mappable (and why), not measured."""
    targets = sorted({g for c in conditions for g in condition_genes(c)})
    table, report = harmonise_genes(pd.Index(targets), index, overrides)
    return {
        "targets": len(targets),
        "renamed": report["renamed"],
        "unmapped": report["unmapped"],
        "not_measured": [g for g in targets if g not in measured],
        "current_symbols": sorted(table.loc[table["entrez_id"] != "", "gene_symbol"]),
    }


def data_card(adata: ad.AnnData, source: str, params: dict, split: Split) -> dict:
    """What a user checks first: sizes, singles and doubles, controls per batch, cells per perturbation, scale."""
    counts = adata.obs[CONDITION_KEY].value_counts()
    perturbed = counts.drop(CONTROL, errors="ignore")
    genes_per = pd.Series({c: len(condition_genes(c)) for c in perturbed.index}, dtype=int)
    values = _stored_values(adata.X)
    card = {
        "source": source,
        "filter": params["filter"],
        "cells": int(adata.n_obs),
        "genes": int(adata.n_vars),
        "control_cells": int(counts.get(CONTROL, 0)),
        "perturbations": int(len(perturbed)),
        "singles": int((genes_per == 1).sum()),
        "doubles": int((genes_per == 2).sum()),
        "higher_order": sorted(genes_per.index[genes_per > 2]),
        "perturbed_genes": len({g for c in perturbed.index for g in condition_genes(c)}),
        "cells_per_perturbation": {
            "min": int(perturbed.min()),
            "median": float(perturbed.median()),
            "max": int(perturbed.max()),
        }
        if len(perturbed)
        else {},
        f"perturbations_with_fewer_than_{FEW_CELLS}_cells": sorted(
            perturbed.index[perturbed < FEW_CELLS]
        ),
        "expression": {
            "declared": params["expression"],
            "in_file": adata.uns.get("expression_in_file"),
            "counts_layer": "counts" in adata.layers,
            "max": float(values.max()) if values.size else 0.0,
            "share_zero": float(1 - np.count_nonzero(values) / (adata.n_obs * adata.n_vars)),
        },
        "split": {
            "kind": split.kind,
            "train": len(split.train),
            "val": len(split.val),
            "test": len(split.test),
            "held_out": len(split.held_out),
            **{k: len(v) for k, v in split.test_subgroups.items()},
        },
    }
    if CONTEXT_KEY in adata.obs:
        card["contexts"] = {
            str(context): {
                "cells": int(len(part)),
                "control_cells": int(part[CONTROL_KEY].sum()),
                "perturbations": int(part.loc[~part[CONTROL_KEY], CONDITION_KEY].nunique()),
            }
            for context, part in adata.obs.groupby(CONTEXT_KEY, observed=True)
        }
    if BATCH_KEY in adata.obs:
        controls = adata.obs.loc[adata.obs[CONTROL_KEY], BATCH_KEY].value_counts()
        card["controls_per_batch"] = {
            str(batch): int(controls.get(batch, 0)) for batch in adata.obs[BATCH_KEY].cat.categories
        }
    return card


# ---- stage entry -----------------------------------------------------------------------------


def _write_outputs(
    outputs: dict[str, Path], adata: ad.AnnData, split: Split, de_genes: dict, card: dict
) -> None:
    with atomic_path(outputs["h5ad"]) as tmp:
        adata.write_h5ad(tmp, compression="gzip")
    write_json_atomic(outputs["split"], split.as_dict())
    write_json_atomic(outputs["de_genes"], de_genes)
    write_json_atomic(outputs["card"], card)


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Check a Perturb-seq file early and write it canonical, with its split, DE genes and data card.

    Reads ``h5ad``, ``org_db``, ``previous_symbols`` and, when configured, ``split_file`` and ``vocabulary``.
    Writes ``h5ad``, ``split``, ``de_genes`` and ``card``. Params: the ``dataset`` config section (columns,
    control labels, separator, filter, expression scale, ``hvg``, ``split``, ``de_genes``) and
    ``symbol_overrides``.
    """
    adata = load_dataset(inputs["h5ad"], params)
    conditions = adata.obs[CONDITION_KEY].unique().tolist()  # the data's order, as GEARS reads it
    log.info(
        "%s: %d cells × %d genes (%s in the file), %d perturbations, %d control cells",
        inputs["h5ad"],
        adata.n_obs,
        adata.n_vars,
        adata.uns["expression_in_file"],
        len(conditions) - 1,
        int(adata.obs[CONTROL_KEY].sum()),
    )
    index = SymbolIndex.from_db(inputs["org_db"], inputs.get("previous_symbols"))
    overrides = params["symbol_overrides"]
    targets = target_report(conditions, index, overrides, adata.var_names)
    hvg = params["hvg"]
    if hvg["n_top_genes"]:
        before = adata.n_vars
        adata = select_hvg(
            adata, hvg["n_top_genes"], keep={g for c in conditions for g in condition_genes(c)}
        )
        log.info(
            "highly variable genes: %d of %d kept (perturbed genes always kept)",
            adata.n_vars,
            before,
        )
    genes_table, genes_report = harmonise_genes(adata.var_names, index, overrides)
    adata.var["gene_symbol"] = genes_table["gene_symbol"].values
    adata.var["entrez_id"] = genes_table["entrez_id"].values
    log.info(
        "measured genes: %d of %d mapped to Entrez ids, %d renamed, %d unmapped, %d Entrez ids with several names",
        genes_report["mapped"],
        genes_report["measured"],
        len(genes_report["renamed"]),
        len(genes_report["unmapped"]),
        len(genes_report["collisions"]),
    )
    split = make_split(
        conditions,
        SplitSettings.from_params(
            params["split"]
            | ({"path": str(inputs["split_file"])} if "split_file" in inputs else {})
        ),
    )
    log.info(
        "%s split: %d train, %d val, %d test perturbations (test: %s)",
        split.kind,
        len(split.train),
        len(split.val),
        len(split.test),
        {k: len(v) for k, v in split.test_subgroups.items()},
    )
    log.info("top %d DE genes of each perturbation against control (t-test)", params["de_genes"])
    de_genes = top_de_genes(adata, params["de_genes"])
    card = data_card(adata, str(inputs["h5ad"]), params, split)
    card["perturbations_without_de_genes"] = sorted(set(conditions) - {CONTROL} - set(de_genes))
    card["measured_genes"] = genes_report
    card["perturbation_targets"] = targets
    card["hvg"] = {"n_top_genes": hvg["n_top_genes"], "genes_kept": int(adata.n_vars)}
    if "vocabulary" in inputs:
        card["vocabulary_coverage"] = vocabulary_coverage(
            list(adata.var["gene_symbol"]), targets["current_symbols"], inputs["vocabulary"]
        )
    _write_outputs(outputs, adata, split, de_genes, card)
    return {
        key: card[key]
        for key in (
            "cells",
            "genes",
            "control_cells",
            "perturbations",
            "singles",
            "doubles",
            "split",
        )
    }
