"""The in-silico screen as a library: a finished run's main model, data and facets, loaded once, predicting
any gene or pair that has facets in the run, explained by facets, placed against the data's noise floor
and scored for genetic interaction.

The predict stage and the notebook API (``dygenept.notebook``) both go through ``InSilicoScreen``: one code
path, so a notebook gets the numbers the stage wrote. A perturbation is predicted as evaluation predicts a
held-out one: the mean over every control cell of the model's predicted expression, averaged over the
seeds the main variant was trained with. The noise floor is the median sampling error of a training
perturbation's mean profile; each entry's distance from the training mean's prediction (the train_mean
baseline) is measured against it, and entries within it of each other share a rank.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..data.arrays import dense
from ..data.conditions import CONDITION_KEY, condition_genes
from ..data.perturbations import PerturbationData, load_perturbation_data
from ..data.screen_requests import Request
from ..formats.facet_tensor import load_facet_tensor, with_genes_of
from ..formats.gene_table import read_genes
from ..io.artifacts import read_json
from ..model.checkpoint import checkpoint_inputs, load_checkpoint
from ..model.inference import predict_condition
from ..model.prior import fit_prior, perturbation_feature
from ..settings import read_fields
from .interactions import (
    InteractionSettings,
    describe,
    interaction_scores,
    single_of,
    well_expressed,
)
from .screen import (
    NOISE_COLUMNS,
    effect_size,
    facet_weight_summary,
    nearest,
    noise_columns,
    noise_floor,
    sampling_error,
    top_changes,
    top_facets,
)

SCREEN_COLUMNS = [
    "condition", "entry", "genes", "unseen_genes", "effect_norm", "n_changed", "top_facets",
    "top_up", "top_down", "nearest_training",
]  # fmt: skip
# A pair's genetic-interaction columns (empty for a single gene).
INTERACTION_COLUMNS = ["c1", "c2", "magnitude", "gi_types"]
# Every column of a screen row: what it predicts, where it stands against the noise floor, a pair's GI.
ALL_COLUMNS = SCREEN_COLUMNS + NOISE_COLUMNS + INTERACTION_COLUMNS
MEASURED, PREDICTED = "measured", "predicted"


@dataclass(frozen=True)
class ScreenSettings:
    """What the screen reports per perturbation (config 'predict', with config 'interactions' for the
    pairs; defaults in config/schema.yaml)."""

    fold_change_threshold: float
    top_genes: int
    nearest_training: int
    top_facets: int
    top_interactions: int
    interactions: InteractionSettings

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ScreenSettings:
        return read_fields(
            cls, params, interactions=InteractionSettings.from_params(params["interactions"])
        )


@dataclass
class Prediction:
    request: Request
    expression: np.ndarray  # mean predicted expression over the control cells and seeds (G,)
    weights: np.ndarray  # per-cell facet weights of every seed's cells (cells × seeds, 2, K)


@dataclass
class ScreenResult:
    """Every predicted request, in request order, and why the others were not predicted."""

    predictions: list[Prediction]
    records: list[dict]
    explanations: dict[str, dict]
    skipped: dict[str, str] = field(default_factory=dict)


def screen_frame(records: Sequence[dict]) -> pd.DataFrame:
    """Screen rows as a table, every column in order; ranks as nullable integers (unranked: <NA>)."""
    return pd.DataFrame(list(records), columns=ALL_COLUMNS).astype({"rank": "Int64"})


def training_noise_floor(h5ad: str | Path, conditions: list[str]) -> float:
    """The data's noise floor: the median over training perturbations of the sampling error of their
    mean profile (what two measurements of the same perturbation would differ by)."""
    adata = ad.read_h5ad(h5ad, backed="r")
    labels = adata.obs[CONDITION_KEY].astype(str).to_numpy()
    errors = [
        sampling_error(dense(adata.X[np.flatnonzero(labels == condition)]))
        for condition in conditions
    ]
    adata.file.close()
    return noise_floor(errors)


def merged_facet_table(model_facets: pd.DataFrame, screen_facets: pd.DataFrame) -> pd.DataFrame:
    """The model's facets, then the screen's for the genes the model's set lacks."""
    extra = screen_facets[~screen_facets["entrez_id"].isin(model_facets["entrez_id"])]
    return pd.concat([model_facets, extra])


class InSilicoScreen:
    """A run's main model (every seed), its data and its facets, ready to predict any request.

    ``split_train``: the split's training perturbations; ``floor``: the data's noise floor over them
    (``training_noise_floor``)."""

    def __init__(
        self,
        data: PerturbationData,
        models: Mapping[tuple[str, int], Any],
        split_train: list[str],
        facets: pd.DataFrame,
        genes: pd.DataFrame,
        settings: ScreenSettings,
        floor: float,
    ):
        self.data, self.models = data, dict(models)
        # the training perturbations with a static embedding (a known gene), by which the nearest are found
        self.train = [c for c in data.measured(split_train) if self.static_feature(c) is not None]
        self.settings, self.interactions = settings, settings.interactions
        # what the model predicts for any perturbation before it learns one: the train_mean baseline
        training = data.training_set(split_train)
        self.reference = data.control_mean + fit_prior("mean", None, training).mean_change
        self.floor = floor
        self.seen = {gene for condition in self.train for gene in condition_genes(condition)}
        self.train_features = np.stack([self.static_feature(c) for c in self.train])
        self.facet_text = dict(zip(zip(facets["entrez_id"], facets["facet"]), facets["text"]))
        self.entrez_of = dict(zip(genes["query"], genes["entrez_id"]))
        self.expressed = well_expressed(data.control_mean, self.interactions.expressed_fraction)
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def static_feature(self, condition: str) -> np.ndarray | None:
        """The perturbation's static (facet-mean) embedding; None when none of its genes has facets."""
        return perturbation_feature(self.data.perturbation_genes(condition))

    @classmethod
    def load(
        cls, inputs: Mapping[str, str | Path], settings: ScreenSettings, device: str = "cpu"
    ) -> InSilicoScreen:
        """From the predict stage's named inputs: ``h5ad``, ``split``, ``genes``, ``facet_tensor`` and
        ``facets`` (the model's gene set: its genes keep the facets they were trained with),
        ``screen_genes``, ``screen_facet_tensor`` and ``screen_facets`` (the genes the model's set lacks),
        ``cell_embedding``, and the main variant's checkpoint for every seed
        (``weights__<variant>__<seed>``, ``config__<variant>__<seed>``); the networks run on ``device``."""
        tensor = with_genes_of(
            load_facet_tensor(inputs["facet_tensor"]),
            load_facet_tensor(inputs["screen_facet_tensor"]),
        )
        genes = pd.concat([read_genes(inputs[name]) for name in ("genes", "screen_genes")])
        data = load_perturbation_data(inputs["h5ad"], genes, tensor, inputs["cell_embedding"])
        models = {
            (variant, seed): load_checkpoint(weights, config)[0].to(device)
            for variant, seeds in checkpoint_inputs(dict(inputs)).items()
            for seed, (weights, config) in sorted(seeds.items())
        }
        facets = merged_facet_table(
            pd.read_parquet(inputs["facets"]), pd.read_parquet(inputs["screen_facets"])
        )
        split_train = read_json(inputs["split"])["train"]
        floor = training_noise_floor(inputs["h5ad"], data.measured(split_train))
        return cls(data, models, split_train, facets, genes, settings, floor)

    # -- which requests can be predicted ------------------------------------------------------------

    def facet_rows(self, requests: Iterable[Request]) -> tuple[dict[Request, list[int]], dict]:
        """Each request's facet-tensor rows, and why the others cannot be predicted (with the fix)."""
        row_of = self.data.facets.row_of()
        rows, skipped = {}, {}
        for request in requests:
            absent = [g for g in request.genes if self.entrez_of.get(g) not in row_of]
            if absent:
                skipped[request.entry] = (
                    f"no facet embedding for {absent} in this run (not in its gene universe). Fix: add "
                    "the perturbation to config 'predict.perturbations' and rerun the pipeline, not the "
                    "predict stage alone: the screen's chain computes the new genes' facets only, and "
                    "nothing is retrained"
                )
                continue
            gene_rows = [row_of[self.entrez_of[g]] for g in request.genes]
            empty = [
                g for g, r in zip(request.genes, gene_rows) if not self.data.facets.mask[r].any()
            ]
            if empty:
                skipped[request.entry] = (
                    f"{empty} has no facet text (its knowledge names no process under any facet): "
                    "nothing to predict from"
                )
                continue
            rows[request] = gene_rows
        return rows, skipped

    def admit(self, requests: Iterable[Request]) -> tuple[list[Request], dict[str, str]]:
        """The requests that can be predicted (they join the data's conditions; one equal to a measured
        condition keeps its cells), and why the others cannot."""
        rows, skipped = self.facet_rows(requests)
        self.data.facet_rows.update({request.condition: r for request, r in rows.items()})
        return list(rows), skipped

    # -- one request ----------------------------------------------------------------------------------

    def predict(self, request: Request) -> Prediction:
        """The mean over control cells and seeds (admitted requests only; computed once per condition)."""
        if request.condition not in self._cache:
            each = [
                predict_condition(m, self.data, request.condition) for m in self.models.values()
            ]
            self._cache[request.condition] = (
                np.mean([expression for expression, _ in each], axis=0),
                np.concatenate([weights for _, weights in each]),
            )
        return Prediction(request, *self._cache[request.condition])

    def delta(self, prediction: Prediction) -> np.ndarray:
        return prediction.expression - self.data.control_mean

    def facet_table(self, prediction: Prediction) -> pd.DataFrame:
        """Every facet of every gene of the request: mean and sd of its weight over the control cells (of
        every seed), whether the gene has text for it, and the text; heaviest first per gene."""
        mean, spread = facet_weight_summary(prediction.weights)
        rows = []
        for slot, gene in enumerate(prediction.request.genes):
            row = self.data.facet_rows[prediction.request.condition][slot]
            entrez = self.data.facets.entrez_ids[row]
            for k, facet in enumerate(self.data.facets.facet_ids):
                rows.append({
                    "gene": gene, "facet": facet, "mean_weight": float(mean[slot, k]),
                    "sd_weight": float(spread[slot, k]), "present": bool(self.data.facets.mask[row, k]),
                    "text": self.facet_text[(entrez, facet)],
                })  # fmt: skip
        table = pd.DataFrame(rows)
        order = {gene: i for i, gene in enumerate(prediction.request.genes)}
        return table.sort_values(
            ["gene", "mean_weight"], key=lambda c: c.map(order) if c.name == "gene" else -c
        ).reset_index(drop=True)

    def explained_facets(self, prediction: Prediction) -> list[dict]:
        """The ``top_facets`` present facets with the largest mean weight, per gene (the screen's)."""
        mean, spread = facet_weight_summary(prediction.weights)
        explained = []
        for slot, gene in enumerate(prediction.request.genes):
            row = self.data.facet_rows[prediction.request.condition][slot]
            entrez = self.data.facets.entrez_ids[row]
            for k in top_facets(mean[slot], self.data.facets.mask[row], self.settings.top_facets):
                facet = self.data.facets.facet_ids[k]
                explained.append({
                    "gene": gene, "facet": facet, "mean_weight": round(float(mean[slot, k]), 4),
                    "sd_weight": round(float(spread[slot, k]), 4),
                    "text": self.facet_text[(entrez, facet)],
                })  # fmt: skip
        return explained

    def interaction(self, request: Request) -> dict[str, Any]:
        """A pair's GI scores from its predicted double and its singles: measured where the data have the
        single, else predicted. The pair must be admitted (its singles then are too)."""
        if len(request.genes) != 2:
            raise ValueError(f"'{request.entry}' is not a pair")
        double = self.predict(request)
        changes, sources = [], {}
        for gene in request.genes:
            single = single_of(gene, request.condition)
            if single in self.data.mean_by_condition:
                changes.append(self.data.change(single))
                sources[gene] = MEASURED
            else:
                alone = Request(gene, (gene,))
                self.admit([alone])
                changes.append(self.delta(self.predict(alone)))
                sources[gene] = PREDICTED
        genes = self.expressed
        scores = interaction_scores(
            changes[0][genes], changes[1][genes], self.delta(double)[genes], self.interactions
        )
        return {**describe(scores, self.interactions), "singles": sources}

    def record(self, prediction: Prediction, explained: list[dict]) -> tuple[dict, dict]:
        """The request's screen row and its explanation."""
        request, settings = prediction.request, self.settings
        delta = self.delta(prediction)
        norm, changed = effect_size(delta, settings.fold_change_threshold)
        up, down = top_changes(delta, self.data.gene_names, settings.top_genes)
        close = nearest(
            self.static_feature(request.condition), self.train_features, self.train,
            settings.nearest_training,
        )  # fmt: skip
        explanation = {
            "entry": request.entry, "facets": explained, "top_up": up, "top_down": down,
            "nearest_training": [{"condition": c, "cosine": s} for c, s in close],
        }  # fmt: skip
        record = {
            "condition": request.condition, "entry": request.entry, "genes": ";".join(request.genes),
            "unseen_genes": ";".join(g for g in request.genes if g not in self.seen),
            "effect_norm": round(norm, 4), "n_changed": changed,
            "top_facets": "; ".join(f"{e['gene']}:{e['facet']}" for e in explained),
            "top_up": ",".join(up), "top_down": ",".join(down),
            "nearest_training": "; ".join(f"{c} ({s:.2f})" for c, s in close),
        }  # fmt: skip
        return record, explanation

    # -- many requests --------------------------------------------------------------------------------

    def screen(self, requests: Sequence[Request]) -> ScreenResult:
        """Predict, explain and (pairs) score every request that can be predicted, and place each against
        the noise floor: ranks and ties are among the requests screened together."""
        admitted, skipped = self.admit(requests)
        result = ScreenResult([], [], {}, skipped)
        for request in admitted:
            prediction = self.predict(request)
            record, explanation = self.record(prediction, self.explained_facets(prediction))
            record.update(dict.fromkeys(INTERACTION_COLUMNS, np.nan) | {"gi_types": ""})
            if len(request.genes) == 2:
                scores = self.interaction(request)
                record.update({column: scores[column] for column in INTERACTION_COLUMNS})
                explanation["interaction"] = scores
            result.predictions.append(prediction)
            result.records.append(record)
            result.explanations[request.condition] = explanation
        if result.predictions:
            conditions = [p.request.condition for p in result.predictions]
            expressions = np.stack([p.expression for p in result.predictions])
            noise = noise_columns(conditions, expressions, self.reference, self.floor)
            for record in result.records:
                record.update(noise.loc[record["condition"]].to_dict())
        return result

    def anndata(self, result: ScreenResult) -> ad.AnnData:
        """One row per predicted request (request order): X the predicted mean expression, ``obs`` the
        screen's columns, ``var`` the data's genes, ``layers['delta']`` the change from control,
        ``uns['noise_floor']``."""
        obs = screen_frame(result.records).set_index("condition", drop=False)
        obs.index.name = None
        expression = np.stack([p.expression for p in result.predictions]).astype(np.float32)
        adata = ad.AnnData(X=expression, obs=obs, var=self.data.var.copy())
        adata.layers["delta"] = expression - self.data.control_mean.astype(np.float32)
        adata.uns["facet_ids"] = list(self.data.facets.facet_ids)
        adata.uns["noise_floor"] = self.floor
        return adata


def strongest_interactions(records: Sequence[dict], count: int) -> tuple[list[dict], list[dict]]:
    """The pairs typed synergy, largest magnitude first, and those typed suppressor, smallest first."""
    pairs = [r for r in records if r.get("gi_types")]

    def typed(name: str) -> list[dict]:
        return [r for r in pairs if name in r["gi_types"].split(";")]

    synergies = sorted(typed("synergy"), key=lambda r: (-r["magnitude"], r["condition"]))
    suppressions = sorted(typed("suppressor"), key=lambda r: (r["magnitude"], r["condition"]))
    return synergies[:count], suppressions[:count]


def interaction_markdown(
    records: Sequence[dict], explanations: Mapping[str, dict], count: int
) -> str:
    """The screen page's section on pairs: the strongest predicted synergies and suppressions."""
    pairs = [r for r in records if r.get("gi_types")]
    if not pairs:
        return ""
    lines = [
        "## Genetic interactions of the pairs",
        "",
        "Each pair's predicted double fit as c1·a + c2·b from its singles (measured where the data have",
        "them, else predicted) on the well-expressed genes; magnitude √((c1² + c2²)/2) is 1 for an",
        "additive pair (Norman et al. 2019; GEARS' GI types and thresholds, config 'interactions').",
        "",
    ]
    synergies, suppressions = strongest_interactions(pairs, count)
    for title, chosen in (
        ("Strongest synergies", synergies),
        ("Strongest suppressions", suppressions),
    ):
        lines += [f"### {title}", ""]
        if not chosen:
            lines += ["none among the predicted pairs", ""]
            continue
        lines += [
            "| pair | c1 | c2 | magnitude | GI types | singles |",
            "|---|---|---|---|---|---|",
        ]
        for row in chosen:
            singles = explanations[row["condition"]]["interaction"]["singles"]
            lines.append(
                f"| {row['condition']} | {row['c1']:.2f} | {row['c2']:.2f} | {row['magnitude']:.2f} | "
                f"{row['gi_types']} | {', '.join(f'{g}: {s}' for g, s in singles.items())} |"
            )
        lines.append("")
    return "\n".join(lines)
