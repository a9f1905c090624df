"""The report stage: the metrics table beside the baselines' and a facet-attention heatmap people can read."""

from __future__ import annotations

import html
import logging
from pathlib import Path

import pandas as pd

from ..artifacts import atomic_path, read_json, write_text_atomic
from ..formats.facet_spec import load_facet_specs

log = logging.getLogger(__name__)

TABLE_METRICS = ["pearson_delta", "pearson_delta_de", "mse_de"]


def metrics_table(summary: dict, group: str = "all") -> pd.DataFrame:
    rows = [
        {"method": method, **groups[group]} for method, groups in summary.items() if group in groups
    ]
    return pd.DataFrame(rows, columns=["method", "n", *TABLE_METRICS]).set_index("method")


def format_table(table: pd.DataFrame) -> str:
    """A plain-text table that reads the same in a terminal and in Markdown."""
    header = ["method", *table.columns]
    lines = [header] + [
        [method, *(_fmt(v) for v in row)]
        for method, row in zip(table.index, table.itertuples(index=False))
    ]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    render = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join(
        [
            render(lines[0]),
            "|" + "|".join("-" * (w + 2) for w in widths) + "|",
            *map(render, lines[1:]),
        ]
    )


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if pd.isna(value) else f"{value:.3f}"
    return str(value)


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
    order = list(facet_names.values())
    values = frame.pivot_table(index="row", columns="facet_name", values="mean_weight", sort=False)[
        order
    ]
    present = frame.pivot_table(
        index="row", columns="facet_name", values="has_facet", sort=False, aggfunc="max"
    )[order]
    return values, present.astype(bool)


def plot_heatmap(values: pd.DataFrame, present: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = max(3.0, 0.32 * len(values) + 1.8)
    figure, axis = plt.subplots(figsize=(9, height))
    if values.empty:
        axis.text(
            0.5, 0.5, "no held-out perturbation with facets to show", ha="center", va="center"
        )
        axis.set_axis_off()
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
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)


METRIC_NOTE = (
    "pearson_delta: Pearson of predicted vs observed mean change from control over all genes; "
    "pearson_delta_de: the same on each perturbation's top DE genes; mse_de: squared error there. "
    "no_change predicts the control mean, so its Pearson is undefined (n/a)."
)


def report_tables(summary: dict) -> list[tuple[str, pd.DataFrame]]:
    """(title, table) for all held-out perturbations, then for each test subgroup."""
    groups = sorted({g for groups in summary.values() for g in groups} - {"all"})
    return [("Held-out perturbations (all)", metrics_table(summary))] + [
        (group, metrics_table(summary, group)) for group in groups
    ]


def markdown_report(summary: dict, skipped: dict, heatmap_name: str) -> str:
    sections = ["# DyGenePT report", ""]
    for title, table in report_tables(summary):
        sections += [f"## {title}", "", format_table(table), ""]
    sections += [METRIC_NOTE, "", "## Facet attention", "", f"![facet weights]({heatmap_name})", ""]
    if skipped:
        sections += (
            ["## Perturbations left out", ""]
            + [f"- {c}: {why}" for c, why in sorted(skipped.items())]
            + [""]
        )
    return "\n".join(sections)


def html_report(summary: dict, skipped: dict, heatmap_name: str) -> str:
    parts = ["<h1>DyGenePT report</h1>"]
    for title, table in report_tables(summary):
        parts += [
            f"<h2>{html.escape(title)}</h2>",
            table.to_html(na_rep="n/a", float_format=lambda v: f"{v:.3f}"),
        ]
    parts += [
        f"<p>{html.escape(METRIC_NOTE)}</p>",
        "<h2>Facet attention</h2>",
        f'<img src="{html.escape(heatmap_name)}" alt="facet weights per held-out perturbation">',
    ]
    if skipped:
        items = "".join(
            f"<li>{html.escape(c)}: {html.escape(why)}</li>" for c, why in sorted(skipped.items())
        )
        parts += ["<h2>Perturbations left out</h2>", f"<ul>{items}</ul>"]
    style = "body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}td,th{padding:.2em .6em}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>DyGenePT report</title><style>{style}</style>"
        f"</head><body>{''.join(parts)}</body></html>\n"
    )


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Write the metrics table, the Markdown/HTML report and the facet-attention heatmap.

    Reads ``metrics``, ``facet_weights`` and ``facets_yaml``. Writes ``markdown``, ``html``, ``heatmap`` and
    ``table``. No params.
    """
    metrics = read_json(inputs["metrics"])
    weights = pd.read_csv(inputs["facet_weights"])
    facet_names = {spec.id: spec.name for spec in load_facet_specs(inputs["facets_yaml"])}
    heatmap = Path(outputs["heatmap"])
    plot_heatmap(*heatmap_matrix(weights, facet_names), heatmap)
    write_text_atomic(
        outputs["markdown"], markdown_report(metrics["summary"], metrics["skipped"], heatmap.name)
    )
    write_text_atomic(
        outputs["html"], html_report(metrics["summary"], metrics["skipped"], heatmap.name)
    )
    write_text_atomic(outputs["table"], format_table(metrics_table(metrics["summary"])) + "\n")
    return {"methods": list(metrics["summary"])}
