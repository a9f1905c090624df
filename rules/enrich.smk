# Genes with thin text get a marked paragraph about their nearest neighbours.


rule enrich:
    input:
        unpack(lambda wildcards: optional_source_inputs("enrich", "string_table")),
        gene_text=rules.knowledge.output.gene_text,
        org_db=annotation_db("org_hs_eg"),
        go_db=annotation_db("go"),
        code=stage_code("enrich"),
    output:
        gene_text=f"{OUT}/enrich/gene_text.parquet",
    log:
        log_path("enrich"),
    benchmark:
        benchmark_path("enrich")
    conda:
        "../envs/knowledge.yaml"
    params:
        cli=CLI,
        io=lambda wildcards, input, output: io_args(input, output),
        config=as_json(
            {
                **config["enrich"],
                "excluded_evidence": config["annotations"]["excluded_evidence"],
            }
        ),
    shell:
        "{params.cli} enrich {params.io} --params {params.config:q} 2> {log}"
