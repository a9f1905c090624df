# The report: metrics table, figures, Markdown/HTML; `snakemake --report results/report.html` gathers the
# outputs marked report() with their captions from report/. The stage writes the same captions under
# its figures in report.md/html (editing one reruns the report stage alone).
FIGURE_CAPTIONS = {
    "bars": "metric_bars",
    "de_changes": "de_changes",
    "heatmap": "facet_heatmap",
    "cell_facets": "cell_facets",
    "curve": "training_curve",
    "interactions": "interactions",
}


rule report:
    input:
        unpack(screen_table_input),
        **{
            f"caption_{key}": f"report/{name}.rst"
            for key, name in FIGURE_CAPTIONS.items()
        },
        metrics=rules.evaluate.output.metrics,
        facet_weights=rules.evaluate.output.facet_weights,
        cell_facets=rules.evaluate.output.cell_facets,
        de_changes=rules.evaluate.output.de_changes,
        interactions=rules.evaluate.output.interactions,
        interactions_summary=rules.evaluate.output.interactions_summary,
        facets_yaml=config["facets"]["spec"],
        code=stage_code("report"),
    output:
        markdown=report(
            f"{OUT}/report/report.md",
            caption="../report/report_page.rst",
            category="Report",
        ),
        html=f"{OUT}/report/report.html",
        table=report(
            f"{OUT}/report/metrics_table.txt",
            caption="../report/metrics_table.rst",
            category="Metrics",
        ),
        bars=report(
            f"{OUT}/report/metric_bars.png",
            caption=f"../report/{FIGURE_CAPTIONS['bars']}.rst",
            category="Metrics",
        ),
        de_changes=report(
            f"{OUT}/report/de_changes.png",
            caption=f"../report/{FIGURE_CAPTIONS['de_changes']}.rst",
            category="Predictions",
        ),
        heatmap=report(
            f"{OUT}/report/facet_heatmap.png",
            caption=f"../report/{FIGURE_CAPTIONS['heatmap']}.rst",
            category="Facet attention",
        ),
        cell_facets=report(
            f"{OUT}/report/cell_facets.png",
            caption=f"../report/{FIGURE_CAPTIONS['cell_facets']}.rst",
            category="Facet attention",
        ),
        curve=report(
            f"{OUT}/report/training_curve.png",
            caption=f"../report/{FIGURE_CAPTIONS['curve']}.rst",
            category="Training",
        ),
        interactions=report(
            f"{OUT}/report/interactions.png",
            caption=f"../report/{FIGURE_CAPTIONS['interactions']}.rst",
            category="Predictions",
        ),
    log:
        log_path("report"),
    conda:
        "../envs/report.yaml"
    params:
        cli=CLI,
        io=stage_io,
    shell:
        "{params.cli} report {params.io} 2> {log}"
