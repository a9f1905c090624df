"""The report stage: the metrics table (model, ablations, baselines, noise ceiling; mean ± sd over seeds)
and the figures people read: metric bars per subgroup, predicted vs observed change on DE genes, the
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
BASELINE_ORDER = ["no_change", "train_mean", "additive", "linear", "knn", "other_contexts"]
FIGURES = {
    "bars": "metric_bars.png",
    "de_changes": "de_changes.png",
    "heatmap": "facet_heatmap.png",
    "cell_facets": "cell_facets.png",
    "curve": "training_curve.png",
    "interactions": "interactions.png",
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


def plot_interactions(table: pd.DataFrame, screen: pd.DataFrame, main: str, path: Path) -> None:
    """Genetic interactions: each method's predicted vs the observed magnitude of the test doubles whose
    singles are measured, and the screen's pairs on the c1–c2 plane (the panels there is data for)."""
    plt = _pyplot()
    observed = table[table["method"] == "observed"].set_index("condition") if len(table) else None
    pairs = screen.dropna(subset=["c1", "c2"]) if "c1" in screen else pd.DataFrame()
    panels = [observed is not None and len(observed) > 0, len(pairs) > 0]
    figure, axes = plt.subplots(1, max(sum(panels), 1), figsize=(6 * max(sum(panels), 1), 5))
    axes = list(np.atleast_1d(axes))
    if not any(panels):
        _empty(axes[0], "no test double with measured singles, and no pair in the screen")
        return _save(figure, path)
    if panels[0]:
        axis = axes.pop(0)
        shown = [
            m
            for m in (main, "additive", "linear", "knn", "train_mean")
            if m in set(table["method"])
        ]
        for method, marker in zip(shown, "osD^v"):
            part = table[table["method"] == method].set_index("condition")
            x = observed.loc[part.index, "magnitude"]
            axis.scatter(x, part["magnitude"], marker=marker, s=30, label=method, zorder=3)
            if method == main:
                for condition, (xi, yi) in zip(part.index, zip(x, part["magnitude"])):
                    axis.annotate(
                        condition, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points"
                    )
        limits = np.nanpercentile(table["magnitude"].astype(float), [0, 100]) + [-0.1, 0.1]
        axis.plot(
            limits,
            limits,
            color="grey",
            linewidth=0.8,
            linestyle="--",
            label="predicted = observed",
        )
        axis.axvline(1, color="lightgrey", linewidth=0.6)
        axis.axhline(1, color="lightgrey", linewidth=0.6)
        axis.set_xlabel("observed magnitude √((c1² + c2²)/2)  (1 = additive)")
        axis.set_ylabel("predicted magnitude (the method's double, observed singles)")
        axis.set_title(f"Test doubles with measured singles (n = {len(observed)})")
        axis.legend(fontsize=7)
    if panels[1]:
        axis = axes.pop(0)
        axis.scatter(pairs["c1"], pairs["c2"], s=30, zorder=3)
        for row in pairs.itertuples(index=False):
            axis.annotate(
                row.condition,
                (row.c1, row.c2),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        angle = np.linspace(0, 2 * np.pi, 200)
        axis.plot(
            np.sqrt(2) * np.cos(angle),
            np.sqrt(2) * np.sin(angle),
            color="grey",
            linestyle="--",
            linewidth=0.8,
            label="magnitude 1",
        )
        axis.scatter([1], [1], marker="+", s=80, color="black", label="additive (1, 1)")
        axis.axhline(0, color="lightgrey", linewidth=0.6)
        axis.axvline(0, color="lightgrey", linewidth=0.6)
        axis.set_aspect("equal", adjustable="datalim")
        axis.set_xlabel("c1 (weight of the first gene's single)")
        axis.set_ylabel("c2 (weight of the second gene's single)")
        axis.set_title(f"Screen's pairs: predicted double on its singles (n = {len(pairs)})")
        axis.legend(fontsize=7)
    _save(figure, path)


def interaction_note(summary: dict, main: str) -> str:
    """What the GI figure rests on: how many doubles, how reliable their observed interaction is, and
    (with enough doubles) how well the main variant ranks them."""
    if not summary.get("n_doubles"):
        return "Genetic interactions: no test double has both singles measured."
    text = (
        f"Genetic interactions: {summary['n_doubles']} test double(s) with measured singles; the half-split "
        f"reliability of their observed non-additive part (ab − a − b) is "
        f"{_fmt(summary['nonadditive_reliability_mean'])} on average (near 0: the data cannot tell the "
        "interaction from noise)."
    )
    if not summary["enough_doubles"]:
        return text + (
            f" Fewer than {summary['min_doubles']} doubles: no correlation or top-k accuracy is "
            "reported, and each double's scores are anecdotes."
        )
    scores = summary["methods"].get(main, {})
    accuracy = ", ".join(f"{t} {_fmt(v)}" for t, v in scores.get("top_k_accuracy", {}).items())
    return text + (
        f" {main}: Pearson of predicted vs observed magnitude {_fmt(scores.get('pearson_magnitude'))}; "
        f"top-{scores.get('top_k')} accuracy per GI type: {accuracy or 'n/a'}."
    )


def plot_training_curves(training: dict, path: Path) -> None:
    """Training and validation loss of every variant and seed (step 0: the train_mean baseline)."""
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
    axis.set_ylabel("squared error of mean expression")
    axis.set_title("Training (thin) and validation (dots) loss; dotted: the step kept")
    axis.legend(fontsize=8)
    _save(figure, path)


METRIC_NOTE = (
    "Mean over held-out perturbations, then mean ± sd over seeds (noise ceiling: over half-split draws). "
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
    """One plain sentence: does the main model beat train_mean, and does it carry specific signal?"""
    summary, main = metrics["summary"], metrics["main_variant"]
    if main not in summary or "train_mean" not in summary:
        return ""
    model, mean = summary[main]["all"], summary["train_mean"]["all"]
    beats = (model["pearson_delta"] or -1) >= (mean["pearson_delta"] or -1)
    specific = (model["pearson_delta_centred"] or 0) > 0
    best = max(
        (m for m in summary if m not in (CEILING, "additive")),
        key=lambda m: summary[m]["all"]["pearson_delta"] or -1,
    )
    return (
        f"{main}: pearson_delta {_fmt(model['pearson_delta'])} vs train_mean "
        f"{_fmt(mean['pearson_delta'])} ({'not worse' if beats else 'WORSE'}); centred pearson_delta "
        f"{_fmt(model['pearson_delta_centred'])} "
        f"({'perturbation-specific signal' if specific else 'no perturbation-specific signal beyond the mean'}). "
        f"Best on pearson_delta over all held-out perturbations: {best}."
    )


def report_tables(metrics: dict) -> list[tuple[str, pd.DataFrame]]:
    groups = sorted({g for m in metrics["summary"].values() for g in m} - {"all"})
    return [("Held-out perturbations (all)", metrics_table(metrics))] + [
        (group, metrics_table(metrics, group)) for group in groups
    ]


FIGURE_TITLES = {
    "bars": "Metrics per subgroup",
    "de_changes": "Predicted vs observed change on top DE genes",
    "heatmap": "Facet attention (perturbations × facets)",
    "cell_facets": "Context dependence: one gene's facet weights across cells",
    "curve": "Training curves",
    "interactions": "Genetic interactions of pairs",
}


def markdown_report(metrics: dict, names: dict[str, str], notes: dict[str, str]) -> str:
    """The report in Markdown; ``notes``: a paragraph under a figure, by figure key."""
    sections = ["# DyGenePT report", "", verdict(metrics), ""]
    for title, table in report_tables(metrics):
        sections += [f"## {title}", "", format_table(table), ""]
    sections += [METRIC_NOTE, ""]
    for key, title in FIGURE_TITLES.items():
        sections += [f"## {title}", "", f"![{title}]({names[key]})", ""]
        sections += [notes[key], ""] if key in notes else []
    if metrics["skipped"]:
        sections += ["## Perturbations left out", ""]
        sections += [f"- {c}: {why}" for c, why in sorted(metrics["skipped"].items())] + [""]
    return "\n".join(sections)


def html_report(metrics: dict, names: dict[str, str], notes: dict[str, str]) -> str:
    parts = ["<h1>DyGenePT report</h1>", f"<p><b>{html.escape(verdict(metrics))}</b></p>"]
    for title, table in report_tables(metrics):
        parts += [f"<h2>{html.escape(title)}</h2>", table.to_html()]
    parts.append(f"<p>{html.escape(METRIC_NOTE)}</p>")
    for key, title in FIGURE_TITLES.items():
        parts += [
            f"<h2>{html.escape(title)}</h2>",
            f'<img src="{html.escape(names[key])}" alt="{html.escape(title)}" style="max-width:100%">',
        ]
        parts += [f"<p>{html.escape(notes[key])}</p>"] if key in notes else []
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

    Reads ``metrics``, ``facet_weights``, ``cell_facets``, ``de_changes``, ``interactions`` and
    ``interactions_summary`` (the evaluate stage's GI table), ``facets_yaml`` and, when the run has a
    screen, ``screen`` (its table). Writes ``markdown``, ``html``, ``table`` and the figures ``bars``,
    ``de_changes``, ``heatmap``, ``cell_facets``, ``curve``, ``interactions`` (PNG). No params.
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
    screen = pd.read_csv(inputs["screen"], sep="\t") if "screen" in inputs else pd.DataFrame()
    plot_interactions(
        read_table(inputs["interactions"]), screen, metrics["main_variant"], outputs["interactions"]
    )
    names = {key: Path(outputs[key]).name for key in FIGURES}
    gi_summary = read_json(inputs["interactions_summary"])
    notes = {"interactions": interaction_note(gi_summary, metrics["main_variant"])}
    write_text_atomic(outputs["markdown"], markdown_report(metrics, names, notes))
    write_text_atomic(outputs["html"], html_report(metrics, names, notes))
    write_text_atomic(outputs["table"], format_table(metrics_table(metrics)) + "\n")
    return {"methods": list(metrics["summary"])}
