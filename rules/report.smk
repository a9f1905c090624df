# The report: metrics table, figures, Markdown/HTML; `snakemake --report report.html` gathers the
# outputs marked report() with their captions from report/.


rule report:
    input:
        unpack(screen_table_input),
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
            caption="../report/metric_bars.rst",
            category="Metrics",
        ),
        de_changes=report(
            f"{OUT}/report/de_changes.png",
            caption="../report/de_changes.rst",
            category="Predictions",
        ),
        heatmap=report(
            f"{OUT}/report/facet_heatmap.png",
            caption="../report/facet_heatmap.rst",
            category="Facet attention",
        ),
        cell_facets=report(
            f"{OUT}/report/cell_facets.png",
            caption="../report/cell_facets.rst",
            category="Facet attention",
        ),
        curve=report(
            f"{OUT}/report/training_curve.png",
            caption="../report/training_curve.rst",
            category="Training",
        ),
        interactions=report(
            f"{OUT}/report/interactions.png",
            caption="../report/interactions.rst",
            category="Predictions",
        ),
    log:
        log_path("report"),
    conda:
        "../envs/report.yaml"
    params:
        cli=CLI,
        io=lambda wildcards, input, output: io_args(input, output),
    shell:
        "{params.cli} report {params.io} 2> {log}"
