"""The report stage: the metrics table (model, ablations, baselines, noise ceiling; mean ± sd over seeds),
the paired bootstrap intervals of each method's difference to train_mean and to the best baseline, and the
figures people read: metric bars per subgroup, predicted vs observed change on DE genes, the
facet-attention heatmap, one gene's facet weights across cells, and the training curves."""

from __future__ import annotations

import html
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..formats.facet_spec import load_facet_specs
from ..io.artifacts import atomic_path, read_json, write_text_atomic

log = logging.getLogger(__name__)

TABLE_METRICS = [
    "pearson_delta",
    "pearson_delta_de",
    "pearson_delta_centred",
    "discrimination",
    "mse_de",
    "de_overlap",
    "direction_de",
]
BAR_METRICS = ["pearson_delta", "pearson_delta_centred", "discrimination"]
CEILING = "noise_ceiling"
BASELINE_ORDER = [
    "no_change",
    "train_mean",
    "additive",
    "linear",
    "kernel",
    "knn",
    "selected",
    "other_contexts",
]
# The differences whose intervals the comparison table shows: (metric, reference label).
COMPARED = [
    ("pearson_delta", "train_mean"),
    ("pearson_delta", "best_baseline"),
    ("pearson_delta_centred", "train_mean"),
]
FIGURES = {
    "bars": "metric_bars.png",
    "de_changes": "de_changes.png",
    "heatmap": "facet_heatmap.png",
    "cell_facets": "cell_facets.png",
    "curve": "training_curve.png",
}


def method_order(summary: dict, main: str) -> list[str]:
    """Baselines, then the main variant and the other variants, then the ceiling."""
    variants = [m for m in summary if m not in BASELINE_ORDER and m not in (main, CEILING)]
    ordered = [m for m in BASELINE_ORDER if m in summary] + [main] * (main in summary)
    return ordered + sorted(variants) + [CEILING] * (CEILING in summary)


def _fmt(value, sd=None, seeds: int = 1) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.3f}" + (f" ± {sd:.3f}" if seeds > 1 and sd is not None else "")


def metrics_table(metrics: dict, group: str = "all") -> pd.DataFrame:
    """Rows: methods; cells 'mean ± sd' (over seeds, or over half-split draws for the ceiling), and each
    method's pearson_delta as a fraction of the ceiling's."""
    summary, fractions = metrics["summary"], metrics.get("fraction_of_ceiling", {})
    rows = {}
    for method in method_order(summary, metrics.get("main_variant", "dygenept")):
        entry = summary[method].get(group)
        if entry is None:
            continue
        row = {"n": str(entry["n"]), "seeds": str(entry["seeds"])}
        for metric in TABLE_METRICS:
            row[metric] = _fmt(entry[metric], entry[f"{metric}_sd"], entry["seeds"])
        share = fractions.get(method, {}).get(group, {}).get("pearson_delta")
        row["pd/ceiling"] = _fmt(share)
        rows[method] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def _interval(entry: dict | None) -> str:
    if not entry or "difference" not in entry:
        return "n/a"
    mark = {"better": " better", "worse": " WORSE"}.get(entry["verdict"], "")
    return f"{entry['difference']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}]{mark}"


def comparison_table(metrics: dict) -> pd.DataFrame:
    """Rows: methods; cells: the mean difference over perturbations to the reference with its paired
    bootstrap interval, marked better / WORSE only where the interval excludes zero."""
    compared = metrics.get("comparisons", {})
    best = compared.get("best_baseline")
    rows = {}
    for method in method_order(metrics["summary"], metrics.get("main_variant", "dygenept")):
        references = compared.get("methods", {}).get(method)
        if not references:
            continue
        row = {}
        for metric, label in COMPARED:
            name = f"best baseline ({best})" if label == "best_baseline" else label
            row[f"{metric} − {name}"] = _interval(references.get(label, {}).get(metric))
        rows[method] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def format_table(table: pd.DataFrame) -> str:
    """A plain-text table that reads the same in a terminal and in Markdown."""
    header = ["method", *table.columns]
    lines = [header] + [[method, *row] for method, row in zip(table.index, table.to_numpy())]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    render = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join(
        [
            render(lines[0]),
            "|" + "|".join("-" * (w + 2) for w in widths) + "|",
            *map(render, lines[1:]),
        ]
    )


def heatmap_matrix(
    weights: pd.DataFrame, facet_names: dict[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows 'GENE (in CONDITION)', columns facet names: mean facet weight, and whether the facet exists."""
    if weights.empty:
        return pd.DataFrame(), pd.DataFrame()
    label = (
        weights["gene"] + " (" + weights["condition"].str.replace("+ctrl", "", regex=False) + ")"
    )
    frame = weights.assign(row=label, facet_name=weights["facet"].map(facet_names))
    order = [name for name in facet_names.values() if name in set(frame["facet_name"])]
    values = frame.pivot_table(index="row", columns="facet_name", values="mean_weight", sort=False)[
        order
    ]
    present = frame.pivot_table(
        index="row", columns="facet_name", values="has_facet", sort=False, aggfunc="max"
    )[order]
    return values, present.astype(bool)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    _pyplot().close(figure)


def _empty(axis, text: str) -> None:
    axis.text(0.5, 0.5, text, ha="center", va="center")
    axis.set_axis_off()


def plot_heatmap(values: pd.DataFrame, present: pd.DataFrame, path: Path) -> None:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, max(3.0, 0.32 * len(values) + 1.8)))
    if values.empty:
        _empty(axis, "no held-out perturbation with facets to show")
    else:
        image = axis.imshow(values.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        axis.set_xticks(range(values.shape[1]), values.columns, rotation=35, ha="right")
        axis.set_yticks(range(values.shape[0]), values.index)
        for (i, j), has in pd.DataFrame(present.to_numpy()).stack().items():
            if not has:
                axis.text(j, i, "·", ha="center", va="center", color="white", fontsize=10)
        axis.set_title(
            "Facet weights on held-out perturbations\n(mean over control cells; · = NONE facet, null vector)"
        )
        figure.colorbar(image, ax=axis, label="attention weight")
    _save(figure, path)


def plot_metric_bars(metrics: dict, path: Path) -> None:
    """One panel per metric: bars per method and subgroup, error bars = sd over seeds, ceiling dashed."""
    plt = _pyplot()
    summary = metrics["summary"]
    methods = [m for m in method_order(summary, metrics["main_variant"]) if m != CEILING]
    groups = ["all", *sorted({g for m in summary.values() for g in m} - {"all"})]
    figure, axes = plt.subplots(1, len(BAR_METRICS), figsize=(5 * len(BAR_METRICS), 4.2))
    width = 0.8 / max(len(methods), 1)
    for axis, metric in zip(np.atleast_1d(axes), BAR_METRICS):
        for i, method in enumerate(methods):
            values = [summary[method].get(g, {}).get(metric) for g in groups]
            sds = [summary[method].get(g, {}).get(f"{metric}_sd") or 0 for g in groups]
            x = np.arange(len(groups)) + (i - len(methods) / 2 + 0.5) * width
            heights = [np.nan if v is None else v for v in values]
            axis.bar(x, heights, width, yerr=sds, label=method, capsize=2)
        for j, group in enumerate(groups):
            bound = summary.get(CEILING, {}).get(group, {}).get(metric)
            if bound is not None:
                axis.hlines(bound, j - 0.45, j + 0.45, colors="black", linestyles="dashed")
        axis.set_xticks(range(len(groups)), groups, rotation=20)
        axis.axhline(0, color="grey", linewidth=0.6)
        axis.set_title(f"{metric} (dashed: noise ceiling)")
    np.atleast_1d(axes)[0].legend(fontsize=7, ncol=2)
    _save(figure, path)


def plot_de_changes(de_changes: pd.DataFrame, main: str, path: Path, n: int = 4) -> None:
    """Observed vs predicted change on the top DE genes of the n perturbations with the largest change."""
    plt = _pyplot()
    if de_changes.empty:
        figure, axis = plt.subplots(figsize=(6, 3))
        _empty(axis, "no DE genes for the held-out perturbations")
        return _save(figure, path)
    size = de_changes.assign(a=de_changes["observed"].abs()).groupby("condition")["a"].mean()
    chosen = list(size.sort_values(ascending=False).index[:n])
    shown = [m for m in (main, "train_mean", "linear", "additive") if m in de_changes]
    figure, axes = plt.subplots(len(chosen), 1, figsize=(10, 2.6 * len(chosen)), squeeze=False)
    for axis, condition in zip(axes[:, 0], chosen):
        part = de_changes[de_changes["condition"] == condition].sort_values("rank")
        x = np.arange(len(part))
        axis.bar(x, part["observed"], 0.8, color="lightgrey", label="observed")
        for method, marker in zip(shown, "os^v"):
            axis.scatter(x, part[method], marker=marker, s=18, label=method, zorder=3)
        axis.set_xticks(x, part["gene"], rotation=60, fontsize=7)
        axis.axhline(0, color="grey", linewidth=0.6)
        axis.set_title(f"{condition}: change from control on its top DE genes", fontsize=9)
    axes[0, 0].legend(fontsize=7, ncol=len(shown) + 1)
    _save(figure, path)


def plot_cell_facets(cell_facets: pd.DataFrame, facet_names: dict[str, str], path: Path) -> None:
    """Each control cell's facet weights for one gene, cells sorted by their state's first PC."""
    plt = _pyplot()
    if cell_facets.empty:
        figure, axis = plt.subplots(figsize=(6, 3))
        _empty(axis, "no held-out perturbation with facets to show")
        return _save(figure, path)
    facet_ids = [f for f in facet_names if f in cell_facets.columns]
    ordered = cell_facets.sort_values("cell_state_pc1")
    figure, (strip, axis) = plt.subplots(
        1, 2, figsize=(10, 5), gridspec_kw={"width_ratios": [1, 14]}, sharey=True
    )
    strip.imshow(ordered[["cell_state_pc1"]].to_numpy(), cmap="coolwarm", aspect="auto")
    strip.set_xticks([0], ["state PC1"], rotation=35, ha="right")
    strip.set_ylabel("control cells (sorted by cell state PC1)")
    image = axis.imshow(
        ordered[facet_ids].to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto"
    )
    axis.set_xticks(
        range(len(facet_ids)), [facet_names[f] for f in facet_ids], rotation=35, ha="right"
    )
    row = cell_facets.iloc[0]
    axis.set_title(f"{row['gene']} ({row['condition']}): facet weights in each control cell")
    figure.colorbar(image, ax=axis, label="attention weight")
    _save(figure, path)


def plot_training_curves(training: dict, path: Path) -> None:
    """Training loss and validation score of every variant and seed (step 0: the prior it nests)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.2))
    if not training:
        _empty(axis, "no trained model")
        return _save(figure, path)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, (variant, seeds) in zip(colours * 4, sorted(training.items())):
        for seed, result in sorted(seeds.items()):
            history = pd.DataFrame(result["history"])
            label = variant if seed == min(seeds) else None
            if "loss" in history:
                train = history.dropna(subset=["loss"])
                axis.plot(train["step"], train["loss"], color=colour, alpha=0.35, linewidth=0.8)
            if "val_loss" in history:
                val = history.dropna(subset=["val_loss"])
                axis.plot(val["step"], val["val_loss"], color=colour, marker=".", label=label)
            axis.axvline(result["best_step"], color=colour, linestyle=":", linewidth=0.8)
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("train: squared error of mean change; val: 1 − pearson_delta")
    axis.set_title("Training loss (thin) and validation score (dots); dotted: the step kept")
    axis.legend(fontsize=8)
    _save(figure, path)


METRIC_NOTE = (
    "Mean over held-out perturbations, then mean ± sd over runs (training seeds × split seeds; noise "
    "ceiling: over half-split draws). Under cross-validation every perturbation is held out once per split "
    "seed, by the models and baselines of its fold. Differences: each perturbation's score averaged over "
    "runs, the mean difference to the reference over perturbations, and its paired bootstrap 95% interval; "
    "a method is called better or WORSE only where the interval excludes zero (best baseline: the baseline "
    "with the highest mean pearson_delta in this table). "
    "pearson_delta(_de): Pearson of predicted vs observed change from control on all genes (on the top DE "
    "genes); pearson_delta_centred: the same with changes measured from the mean of the training "
    "perturbations (Systema), so train_mean scores 0 and a positive score is perturbation-specific signal; "
    "discrimination: 1 − rank/N of the true perturbation among all test perturbations by L1 distance of "
    "the predicted to the observed change (Virtual Cell Challenge; 0.5 ≈ chance); mse_de: squared error on "
    "DE genes; de_overlap: share of the observed DE genes among the top predicted changes; direction_de: "
    "share of DE genes changed in the right direction; pd/ceiling: pearson_delta over the ceiling's. "
    "noise_ceiling: one random half of each perturbation's cells predicting the other half. no_change "
    "predicts control, so its pearson_delta is undefined (n/a)."
)


def verdict(metrics: dict) -> str:
    """Plain sentences from the paired intervals: is the main model better than train_mean and than the
    best baseline, and does it carry perturbation-specific signal? "Better" only where the interval
    excludes zero."""
    summary, main = metrics["summary"], metrics["main_variant"]
    compared = metrics.get("comparisons", {})
    references = compared.get("methods", {}).get(main)
    if main not in summary or not references:
        return ""
    model = summary[main]["all"]

    def said(label: str, metric: str) -> str:
        entry = references.get(label, {}).get(metric, {})
        return {"better": "better", "worse": "WORSE"}.get(
            entry.get("verdict", ""), "no difference shown"
        ) + f" ({_interval(entry)})"

    best = compared.get("best_baseline")
    parts = [
        f"{main} ({metrics.get('protocol', 'split')}, {model['n']} perturbations): pearson_delta "
        f"{_fmt(model['pearson_delta'])}; vs train_mean: {said('train_mean', 'pearson_delta')}"
    ]
    if best and best != main:
        parts.append(f"vs the best baseline ({best}): {said('best_baseline', 'pearson_delta')}")
    parts.append(
        f"centred pearson_delta {_fmt(model['pearson_delta_centred'])}, vs 0: "
        f"{said('train_mean', 'pearson_delta_centred')}"
    )
    return "; ".join(parts) + ". Paired bootstrap 95% intervals over perturbations."


def report_tables(metrics: dict) -> list[tuple[str, pd.DataFrame]]:
    groups = sorted({g for m in metrics["summary"].values() for g in m} - {"all"})
    tables = [("Held-out perturbations (all)", metrics_table(metrics))]
    comparison = comparison_table(metrics)
    if not comparison.empty:
        tables.append(("Differences with paired bootstrap 95% intervals", comparison))
    return tables + [(group, metrics_table(metrics, group)) for group in groups]


FIGURE_TITLES = {
    "bars": "Metrics per subgroup",
    "de_changes": "Predicted vs observed change on top DE genes",
    "heatmap": "Facet attention (perturbations × facets)",
    "cell_facets": "Context dependence: one gene's facet weights across cells",
    "curve": "Training curves",
}


def markdown_report(metrics: dict, names: dict[str, str]) -> str:
    sections = ["# DyGenePT report", "", verdict(metrics), ""]
    for title, table in report_tables(metrics):
        sections += [f"## {title}", "", format_table(table), ""]
    sections += [METRIC_NOTE, ""]
    for key, title in FIGURE_TITLES.items():
        sections += [f"## {title}", "", f"![{title}]({names[key]})", ""]
    if metrics["skipped"]:
        sections += ["## Perturbations left out", ""]
        sections += [f"- {c}: {why}" for c, why in sorted(metrics["skipped"].items())] + [""]
    return "\n".join(sections)


def html_report(metrics: dict, names: dict[str, str]) -> str:
    parts = ["<h1>DyGenePT report</h1>", f"<p><b>{html.escape(verdict(metrics))}</b></p>"]
    for title, table in report_tables(metrics):
        parts += [f"<h2>{html.escape(title)}</h2>", table.to_html()]
    parts.append(f"<p>{html.escape(METRIC_NOTE)}</p>")
    for key, title in FIGURE_TITLES.items():
        parts += [
            f"<h2>{html.escape(title)}</h2>",
            f'<img src="{html.escape(names[key])}" alt="{html.escape(title)}" style="max-width:100%">',
        ]
    if metrics["skipped"]:
        items = "".join(
            f"<li>{html.escape(c)}: {html.escape(why)}</li>"
            for c, why in sorted(metrics["skipped"].items())
        )
        parts += ["<h2>Perturbations left out</h2>", f"<ul>{items}</ul>"]
    style = "body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}td,th{padding:.2em .6em}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>DyGenePT report</title><style>{style}</style>"
        f"</head><body>{''.join(parts)}</body></html>\n"
    )


def read_table(path: Path) -> pd.DataFrame:
    """A CSV the evaluate stage wrote; an empty frame when it had nothing to write."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Write the metrics table, the Markdown/HTML report and its figures.

    Reads ``metrics``, ``facet_weights``, ``cell_facets``, ``de_changes`` and ``facets_yaml``. Writes
    ``markdown``, ``html``, ``table`` and the figures ``bars``, ``de_changes``, ``heatmap``,
    ``cell_facets``, ``curve`` (PNG). No params.
    """
    metrics = read_json(inputs["metrics"])
    facet_names = {spec.id: spec.name for spec in load_facet_specs(inputs["facets_yaml"])}
    plot_metric_bars(metrics, Path(outputs["bars"]))
    plot_de_changes(
        read_table(inputs["de_changes"]), metrics["main_variant"], Path(outputs["de_changes"])
    )
    plot_heatmap(
        *heatmap_matrix(read_table(inputs["facet_weights"]), facet_names), Path(outputs["heatmap"])
    )
    plot_cell_facets(read_table(inputs["cell_facets"]), facet_names, Path(outputs["cell_facets"]))
    plot_training_curves(metrics["training"], Path(outputs["curve"]))
    names = {key: Path(outputs[key]).name for key in FIGURES}
    write_text_atomic(outputs["markdown"], markdown_report(metrics, names))
    write_text_atomic(outputs["html"], html_report(metrics, names))
    tables = [format_table(metrics_table(metrics))]
    if not (comparison := comparison_table(metrics)).empty:
        tables.append(format_table(comparison))
    write_text_atomic(outputs["table"], "\n\n".join(tables) + "\n")
    return {"methods": list(metrics["summary"])}
