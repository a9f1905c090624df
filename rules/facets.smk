# Each gene's text → K facet paragraphs or NONE. Editing resources/facets.yaml or the backend reruns this.


rule facets:
    input:
        gene_text=rules.enrich.output.gene_text,
        facets_yaml=config["facets"]["spec"],
        org_db=annotation_db("org_hs_eg"),
        go_db=annotation_db("go"),
        code=stage_code("facets"),
    output:
        facets=f"{OUT}/facets/facets.parquet",
        report=f"{OUT}/facets/facets_report.json",
    log:
        log_path("facets"),
    benchmark:
        benchmark_path("facets")
    conda:
        "../envs/facets.yaml"
    params:
        cli=CLI,
        io=lambda wildcards, input, output: io_args(input, output),
        config=as_json(facets_params()),
    shell:
        "{params.cli} facets {params.io} --params {params.config:q} 2> {log}"
