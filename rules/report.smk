# A Markdown/HTML report with the metrics table and the facet-attention heatmap.


rule report:
    input:
        metrics=rules.evaluate.output.metrics,
        facet_weights=rules.evaluate.output.facet_weights,
        facets_yaml=config["facets"]["spec"],
        code=stage_code("report"),
    output:
        markdown=f"{OUT}/report/report.md",
        html=report(
            f"{OUT}/report/report.html",
            caption="../report/report_page.rst",
            category="Report",
        ),
        heatmap=report(
            f"{OUT}/report/facet_heatmap.png",
            caption="../report/facet_heatmap.rst",
            category="Results",
        ),
        table=report(
            f"{OUT}/report/metrics_table.txt",
            caption="../report/metrics_table.rst",
            category="Results",
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
