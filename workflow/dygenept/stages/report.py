"""The report stage: the metrics table (model, ablations, baselines, noise ceiling; mean ± sd over seeds),
the paired bootstrap intervals of each method's difference to train_mean and to the best baseline, and
the figures people read: metric bars per subgroup, predicted vs observed change on DE genes, the
facet-attention heatmap, one gene's facet weights across cells, the training curves, and the genetic
interactions of pairs (test doubles predicted vs observed; the screen's pairs)."""

from __future__ import annotations

import html
import logging
import re
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


def _save(figure, path: Path, layout: bool = True) -> None:
    if layout:
        figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    _pyplot().close(figure)


def _empty(axis, text: str) -> None:
    axis.text(0.5, 0.5, text, ha="center", va="center")
    axis.set_axis_off()


def plot_heatmap(values: pd.DataFrame, present: pd.DataFrame, path: Path) -> str:
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
                axis.text(j, i, "×", ha="center", va="center", color="lightgrey", fontsize=8)
        axis.set_title(
            "Facet weights on held-out perturbations\n(mean over control cells; × = NONE facet, null vector)"
        )
        axis.set_ylabel("gene (held-out perturbation)")
        figure.colorbar(image, ax=axis, label="attention weight (sums to 1 per gene)")
    _save(figure, path)
    if values.empty:
        return "No held-out perturbation had facets to show."
    return f"{len(values)} genes of held-out perturbations; {int((~present).to_numpy().sum())} NONE facets."


# What each bar metric's axis measures.
METRIC_AXES = {
    "pearson_delta": "Pearson r, predicted vs observed\nchange from control",
    "pearson_delta_centred": "Pearson r, predicted vs observed\nchange from the training mean",
    "discrimination": "discrimination score\n(0.5 = chance, 1 = perfect)",
}
# Subgroups with fewer held-out perturbations than this are hatched: their bars are anecdotes.
FEW_PERTURBATIONS = 3


def bar_error(entry: dict, metric: str) -> float | None:
    """The half-width of a bar's error bar: the sd over seeds, where there are several (one seed has
    none). An interval the evaluation gives (``<metric>_ci``: [low, high]) is drawn instead, where present."""
    interval = entry.get(f"{metric}_ci")
    if interval is not None and entry.get(metric) is not None:
        return max(entry[metric] - interval[0], interval[1] - entry[metric])
    if entry.get("seeds", 1) > 1 and entry.get(f"{metric}_sd") is not None:
        return entry[f"{metric}_sd"]
    return None


def group_sizes(summary: dict, methods: list[str], groups: list[str]) -> dict[str, int]:
    """Each subgroup's number of held-out perturbations: the most common n among the methods (a
    baseline that applies to fewer, such as additive, is marked on its bar)."""
    sizes = {}
    for group in groups:
        counts = [summary[m][group]["n"] for m in methods if group in summary[m]]
        sizes[group] = max(set(counts), key=counts.count) if counts else 0
    return sizes


def plot_metric_bars(metrics: dict, path: Path) -> str:
    """One panel per metric: bars per method and subgroup with n, error bars only over several seeds
    (or intervals), hatched where n < FEW_PERTURBATIONS, the noise ceiling dashed. Returns the caption's
    note on this run."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    summary = metrics["summary"]
    methods = [m for m in method_order(summary, metrics["main_variant"]) if m != CEILING]
    groups = ["all", *sorted({g for m in summary.values() for g in m} - {"all"})]
    sizes = group_sizes(summary, methods, groups)
    figure, axes = plt.subplots(1, len(BAR_METRICS), figsize=(5.2 * len(BAR_METRICS), 4.8))
    width = 0.8 / max(len(methods), 1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, metric in zip(np.atleast_1d(axes), BAR_METRICS):
        for i, method in enumerate(methods):
            colour = colours[i % len(colours)]
            for j, group in enumerate(groups):
                entry = summary[method].get(group)
                if entry is None or entry.get(metric) is None:
                    continue
                x = j + (i - len(methods) / 2 + 0.5) * width
                few = entry["n"] < FEW_PERTURBATIONS
                error = bar_error(entry, metric)
                axis.bar(
                    x, entry[metric], width, color=colour, alpha=0.45 if few else 1.0,
                    hatch="///" if few else None, edgecolor=colour if few else None,
                    yerr=error, capsize=2,
                )  # fmt: skip
                if entry["n"] != sizes[group]:
                    top = max(entry[metric], 0) + (error or 0) + 0.01
                    axis.text(
                        x, top, f"n={entry['n']}", ha="center", va="bottom", fontsize=7, rotation=90
                    )
        for j, group in enumerate(groups):
            bound = summary.get(CEILING, {}).get(group, {}).get(metric)
            if bound is not None:
                axis.hlines(bound, j - 0.45, j + 0.45, colors="black", linestyles="dashed")
        labels = [f"{g}\n(n={sizes[g]})" for g in groups]
        axis.set_xticks(range(len(groups)), labels, fontsize=8, rotation=25, ha="right")
        axis.margins(y=0.12)  # room for the n of a bar that covers fewer perturbations
        axis.axhline(0, color="grey", linewidth=0.6)
        axis.set_ylabel(METRIC_AXES[metric], fontsize=9)
        axis.set_title(metric, fontsize=10)
    seeds = max((e["seeds"] for m in methods for e in summary[m].values()), default=1)
    handles = [Patch(color=colours[i % len(colours)], label=m) for i, m in enumerate(methods)]
    handles += [
        Patch(
            facecolor="white",
            edgecolor="grey",
            hatch="///",
            label=f"n < {FEW_PERTURBATIONS} perturbations",
        ),
        plt.Line2D([], [], color="black", linestyle="dashed", label="noise ceiling"),
    ]
    figure.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    spread = "error bars: sd over seeds" if seeds > 1 else "one seed: no error bars"
    figure.suptitle(
        f"Held-out perturbations by GEARS subgroup (n = perturbations per group; {spread})",
        fontsize=11,
    )
    figure.tight_layout(rect=(0, 0, 0.89, 1))
    _save(figure, path, layout=False)
    few = [g for g in groups if sizes[g] < FEW_PERTURBATIONS]
    notes = [f"n per group: {', '.join(f'{g} {sizes[g]}' for g in groups)}; {spread}."]
    if few:
        notes.append(f"Hatched: fewer than {FEW_PERTURBATIONS} perturbations ({', '.join(few)}).")
    return " ".join(notes)


def de_change_choice(de_changes: pd.DataFrame, n: int) -> list[str]:
    """The ``n`` held-out perturbations with the largest mean absolute observed change on their DE
    genes: where there is a change to get right."""
    size = de_changes.assign(a=de_changes["observed"].abs()).groupby("condition")["a"].mean()
    return list(size.sort_values(ascending=False, kind="stable").index[:n])


EXPRESSION_CHANGE = "change from control\n(Δ log(1 + normalised count))"


def plot_de_changes(de_changes: pd.DataFrame, main: str, path: Path, n: int = 4) -> str:
    """Observed vs predicted change on the top DE genes of the n perturbations with the largest change.
    Returns the caption's note on this run."""
    plt = _pyplot()
    if de_changes.empty:
        figure, axis = plt.subplots(figsize=(6, 3))
        _empty(axis, "no DE genes for the held-out perturbations")
        _save(figure, path)
        return "No held-out perturbation had DE genes to show."
    chosen = de_change_choice(de_changes, n)
    total = de_changes["condition"].nunique()
    genes = int(de_changes.groupby("condition").size().max())
    shown = [m for m in (main, "train_mean", "linear", "additive") if m in de_changes]
    figure, axes = plt.subplots(
        len(chosen), 1, figsize=(10, 2.7 * len(chosen) + 0.6), squeeze=False
    )
    for axis, condition in zip(axes[:, 0], chosen):
        part = de_changes[de_changes["condition"] == condition].sort_values("rank")
        x = np.arange(len(part))
        axis.bar(x, part["observed"], 0.8, color="lightgrey", label="observed")
        for method, marker in zip(shown, "os^v"):
            axis.scatter(x, part[method], marker=marker, s=18, label=method, zorder=3)
        axis.set_xticks(x, part["gene"], rotation=60, fontsize=7)
        axis.axhline(0, color="grey", linewidth=0.6)
        axis.set_ylabel(EXPRESSION_CHANGE, fontsize=8)
        axis.set_title(f"{condition}: its top {len(part)} DE genes", fontsize=9)
    axes[0, 0].legend(fontsize=7, ncol=len(shown) + 1)
    how = (
        f"The {len(chosen)} of {total} held-out perturbations with the largest mean |observed change| "
        f"on their top {genes} DE genes"
    )
    figure.suptitle(f"{how}:\nobserved (grey bars) and predicted change from control", fontsize=10)
    _save(figure, path)
    return f"Shown: {', '.join(chosen)} ({len(chosen)} of {total}; top {genes} DE genes each)."


def plot_cell_facets(
    cell_facets: pd.DataFrame, facet_names: dict[str, str], present: set[str], path: Path
) -> str:
    """Each control cell's facet weights for one gene, cells sorted by their state's first PC; NONE
    facets (no text: the null vector stands in) hatched. Returns the caption's note on this run."""
    plt = _pyplot()
    if cell_facets.empty:
        figure, axis = plt.subplots(figsize=(6, 3))
        _empty(axis, "no held-out perturbation with facets to show")
        _save(figure, path)
        return "No held-out perturbation had facets to show."
    facet_ids = [f for f in facet_names if f in cell_facets.columns]
    ordered = cell_facets.sort_values("cell_state_pc1")
    figure, (strip, axis) = plt.subplots(
        1, 2, figsize=(11, 6.2), gridspec_kw={"width_ratios": [2, 14], "wspace": 0.04}, sharey=True
    )
    rows = np.arange(len(ordered))
    strip.plot(ordered["cell_state_pc1"], rows, color="black", linewidth=1)
    strip.set_xlabel("cell-state\nPC1 score", fontsize=8)
    strip.tick_params(axis="x", labelsize=7)
    strip.set_ylabel(f"control cells (n = {len(ordered)}), sorted by cell-state PC1")
    weights = ordered[facet_ids].to_numpy()
    # the colour scale ends at the largest weight shown: small weights that vary across cells stay visible
    top = max(0.1, float(np.ceil(weights.max() * 20) / 20))
    image = axis.imshow(weights, cmap="viridis", vmin=0, vmax=top, aspect="auto")
    for j, facet in enumerate(facet_ids):
        if facet not in present:
            axis.axvspan(
                j - 0.5, j + 0.5, facecolor=(1, 1, 1, 0.2), edgecolor="lightgrey", hatch="//", lw=0
            )
    labels = [facet_names[f] + ("" if f in present else " (NONE)") for f in facet_ids]
    axis.set_xticks(range(len(facet_ids)), labels, rotation=35, ha="right")
    row = cell_facets.iloc[0]
    shown = sum(f in present for f in facet_ids)
    axis.set_title(
        f"{row['gene']} in {row['condition']}: facet weights in each control cell\n"
        f"({shown} of {len(facet_ids)} facets have text; hatched: NONE, the null vector stands in)",
        fontsize=10,
    )
    figure.colorbar(image, ax=axis, label="attention weight (sums to 1 per cell)", fraction=0.04)
    # the rotated facet names reach left of their axis: a fixed layout keeps the strip beside it
    figure.subplots_adjust(left=0.07, right=0.93, top=0.9, bottom=0.32)
    _save(figure, path, layout=False)
    return (
        f"{row['gene']} in {row['condition']}, {shown} of {len(facet_ids)} facets with text, "
        f"over {len(ordered)} control cells."
    )


def plot_interactions(table: pd.DataFrame, screen: pd.DataFrame, main: str, path: Path) -> str:
    """Genetic interactions: each method's predicted vs the observed magnitude of the test doubles whose
    singles are measured, and the screen's pairs on the c1–c2 plane (the panels there is data for).
    Returns the caption's note: which panels, over how many."""
    plt = _pyplot()
    observed = table[table["method"] == "observed"].set_index("condition") if len(table) else None
    pairs = screen.dropna(subset=["c1", "c2"]) if "c1" in screen else pd.DataFrame()
    panels = [observed is not None and len(observed) > 0, len(pairs) > 0]
    figure, axes = plt.subplots(1, max(sum(panels), 1), figsize=(6 * max(sum(panels), 1), 5))
    axes = list(np.atleast_1d(axes))
    if not any(panels):
        _empty(axes[0], "no test double with measured singles, and no pair in the screen")
        _save(figure, path)
        return "No test double has measured singles and the screen has no pair: nothing to draw."
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
    drawn = [
        f"{len(observed)} held-out double(s) with measured singles" if panels[0] else "",
        f"the screen's {len(pairs)} pair(s) on the c1–c2 plane" if panels[1] else "",
    ]
    return f"Drawn: {'; '.join(part for part in drawn if part)}."


def interaction_note(summary: dict, main: str) -> str:
    """What the GI figure's doubles rest on: how reliable their observed interaction is and (with enough
    doubles) how well the main variant ranks them; nothing when no test double has measured singles."""
    if not summary.get("n_doubles"):
        return ""
    text = (
        "The half-split reliability of the doubles' observed non-additive part (ab − a − b) is "
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


LOSS_AXES = {
    "relative": "relative squared error (squared error ÷ squared\nobserved change; 1 = no better than no change)",
    "mse": "squared error of mean expression\n(log-normalised units²)",
}


def plot_training_curves(training: dict, main: str, path: Path) -> str:
    """Training loss and validation score of every variant and seed (step 0: the prior it nests), the
    main model drawn last and thickest, a star at each kept step. Returns the caption's note."""
    plt = _pyplot()
    from matplotlib.ticker import FormatStrFormatter

    figure, axis = plt.subplots(figsize=(9, 4.6))
    if not training:
        _empty(axis, "no trained model")
        _save(figure, path)
        return "No trained model."
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour_of = dict(zip(sorted(training), colours * 4))
    losses = {r.get("loss", "mse") for seeds in training.values() for r in seeds.values()}
    # the main model last, so that it is drawn over the ablations
    for variant in sorted(training, key=lambda v: (v == main, v)):
        is_main, colour = variant == main, colour_of[variant]
        seeds = training[variant]
        for seed, result in sorted(seeds.items()):
            history = pd.DataFrame(result["history"])
            label = (f"{variant} (main)" if is_main else variant) if seed == min(seeds) else None
            zorder = 5 if is_main else 2
            if "loss" in history:
                train = history.dropna(subset=["loss"])
                axis.plot(
                    train["step"],
                    train["loss"],
                    color=colour,
                    alpha=0.3,
                    linewidth=0.8,
                    zorder=zorder,
                )
            if "val_loss" in history:
                val = history.dropna(subset=["val_loss"])
                axis.plot(
                    val["step"], val["val_loss"], color=colour, marker=".", label=label,
                    linewidth=2.2 if is_main else 1.0, alpha=1.0 if is_main else 0.7, zorder=zorder + 1,
                )  # fmt: skip
                kept = val[val["step"] == result["best_step"]]
                axis.scatter(
                    kept["step"], kept["val_loss"], marker="*", s=220 if is_main else 110,
                    color=colour, edgecolor="black", linewidth=0.8, zorder=zorder + 2,
                )  # fmt: skip
    axis.set_yscale("log")
    for ticks in (axis.yaxis.set_major_formatter, axis.yaxis.set_minor_formatter):
        ticks(FormatStrFormatter("%g"))  # 0.6, 1, 2 rather than 6×10⁻¹
    axis.set_xlabel("training step")
    # the validation score is always 1 − pearson_delta; the training loss is what config chose
    axis.set_ylabel(
        f"log scale: validation 1 − pearson_delta,\ntraining {', '.join(sorted(losses))} loss",
        fontsize=9,
    )
    axis.scatter([], [], marker="*", s=110, color="white", edgecolor="black", label="weights kept")
    axis.legend(fontsize=8)
    axis.set_title(
        "Validation score (dots; the main model thick, on top) and training loss (thin)\n"
        "★: the step whose weights were kept (step 0 is the prior the network nests)",
        fontsize=10,
    )
    _save(figure, path)
    training_loss = " / ".join(
        LOSS_AXES.get(loss, loss).replace("\n", " ") for loss in sorted(losses)
    )
    return f"Training loss of this run: {training_loss}."


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
    "interactions": "Genetic interactions of pairs",
}


def rst_caption(text: str) -> str:
    """A caption from report/*.rst (the same text ``snakemake --report`` shows) as one Markdown
    paragraph: ``literal`` becomes `literal`."""
    return re.sub(r"``(.+?)``", r"`\1`", " ".join(text.split()))


def caption_html(caption: str) -> str:
    parts = re.split(r"`(.+?)`", caption)
    return "".join(
        f"<code>{html.escape(part)}</code>" if i % 2 else html.escape(part, quote=False)
        for i, part in enumerate(parts)
    )


def markdown_report(metrics: dict, names: dict[str, str], captions: dict[str, str]) -> str:
    sections = ["# DyGenePT report", "", verdict(metrics), ""]
    for title, table in report_tables(metrics):
        sections += [f"## {title}", "", format_table(table), ""]
    sections += [METRIC_NOTE, ""]
    for key, title in FIGURE_TITLES.items():
        sections += [f"## {title}", "", f"![{title}]({names[key]})", "", f"*{captions[key]}*", ""]
    if metrics["skipped"]:
        sections += ["## Perturbations left out", ""]
        sections += [f"- {c}: {why}" for c, why in sorted(metrics["skipped"].items())] + [""]
    return "\n".join(sections)


def html_report(metrics: dict, names: dict[str, str], captions: dict[str, str]) -> str:
    parts = ["<h1>DyGenePT report</h1>", f"<p><b>{html.escape(verdict(metrics))}</b></p>"]
    for title, table in report_tables(metrics):
        parts += [f"<h2>{html.escape(title)}</h2>", table.to_html()]
    parts.append(f"<p>{html.escape(METRIC_NOTE)}</p>")
    for key, title in FIGURE_TITLES.items():
        parts += [
            f"<h2>{html.escape(title)}</h2>",
            "<figure>"
            f'<img src="{html.escape(names[key])}" alt="{html.escape(title)}" style="max-width:100%">'
            f"<figcaption>{caption_html(captions[key])}</figcaption></figure>",
        ]
    if metrics["skipped"]:
        items = "".join(
            f"<li>{html.escape(c)}: {html.escape(why)}</li>"
            for c, why in sorted(metrics["skipped"].items())
        )
        parts += ["<h2>Perturbations left out</h2>", f"<ul>{items}</ul>"]
    style = (
        "body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{padding:.2em .6em}figcaption{font-style:italic;margin:.4em 0 1.6em}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>DyGenePT report</title><style>{style}</style>"
        f"</head><body>{''.join(parts)}</body></html>\n"
    )


def present_facets(facet_weights: pd.DataFrame, cell_facets: pd.DataFrame) -> set[str]:
    """The facets with text of the gene the cells × facets view shows (from the facet-weight table)."""
    if cell_facets.empty or facet_weights.empty:
        return set()
    row = cell_facets.iloc[0]
    gene = facet_weights[
        (facet_weights["condition"] == row["condition"]) & (facet_weights["gene"] == row["gene"])
    ]
    return set(gene.loc[gene["has_facet"].astype(bool), "facet"])


def read_table(path: Path) -> pd.DataFrame:
    """A CSV the evaluate stage wrote; an empty frame when it had nothing to write."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Write the metrics table, the Markdown/HTML report and its figures, each with its caption.

    Reads ``metrics``, ``facet_weights``, ``cell_facets``, ``de_changes``, ``interactions`` and
    ``interactions_summary`` (the evaluate stage's GI table), ``facets_yaml``, each figure's caption
    (``caption_<figure>``: report/*.rst, which ``snakemake --report`` shows too) and, when the run has a
    screen, ``screen`` (its table). Writes ``markdown``, ``html``, ``table`` and the figures ``bars``,
    ``de_changes``, ``heatmap``, ``cell_facets``, ``curve``, ``interactions`` (PNG); the captions in the
    report add what each figure shows in this run. No params.
    """
    metrics = read_json(inputs["metrics"])
    facet_names = {spec.id: spec.name for spec in load_facet_specs(inputs["facets_yaml"])}
    facet_weights, cell_facets = (
        read_table(inputs["facet_weights"]),
        read_table(inputs["cell_facets"]),
    )
    notes = {
        "bars": plot_metric_bars(metrics, Path(outputs["bars"])),
        "de_changes": plot_de_changes(
            read_table(inputs["de_changes"]), metrics["main_variant"], Path(outputs["de_changes"])
        ),
        "heatmap": plot_heatmap(
            *heatmap_matrix(facet_weights, facet_names), Path(outputs["heatmap"])
        ),
        "cell_facets": plot_cell_facets(
            cell_facets,
            facet_names,
            present_facets(facet_weights, cell_facets),
            Path(outputs["cell_facets"]),
        ),
        "curve": plot_training_curves(
            metrics["training"], metrics["main_variant"], Path(outputs["curve"])
        ),
    }
    screen = pd.read_csv(inputs["screen"], sep="\t") if "screen" in inputs else pd.DataFrame()
    drawn = plot_interactions(
        read_table(inputs["interactions"]),
        screen,
        metrics["main_variant"],
        Path(outputs["interactions"]),
    )
    reliability = interaction_note(
        read_json(inputs["interactions_summary"]), metrics["main_variant"]
    )
    notes["interactions"] = " ".join(part for part in (drawn, reliability) if part)
    captions = {
        key: " ".join(
            [rst_caption(Path(inputs[f"caption_{key}"]).read_text(encoding="utf-8")), notes[key]]
        )
        for key in FIGURES
    }
    names = {key: Path(outputs[key]).name for key in FIGURES}
    write_text_atomic(outputs["markdown"], markdown_report(metrics, names, captions))
    write_text_atomic(outputs["html"], html_report(metrics, names, captions))
    tables = [format_table(metrics_table(metrics))]
    if not (comparison := comparison_table(metrics)).empty:
        tables.append(format_table(comparison))
    write_text_atomic(outputs["table"], "\n\n".join(tables) + "\n")
    return {"methods": list(metrics["summary"])}
