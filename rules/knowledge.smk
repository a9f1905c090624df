# Gene function text, one sentence at a time with its source.


rule knowledge:
    input:
        unpack(lambda wildcards: optional_source_inputs("knowledge", "refseq_tsv")),
        genes=rules.genes.output.genes,
        org_db=annotation_db("org_hs_eg"),
        go_db=annotation_db("go"),
        code=stage_code("knowledge"),
        cleaning_code=stage_code("text_cleaning"),
    output:
        gene_text=f"{OUT}/knowledge/gene_text.parquet",
    log:
        log_path("knowledge"),
    benchmark:
        benchmark_path("knowledge")
    conda:
        "../envs/knowledge.yaml"
    params:
        cli=CLI,
        io=lambda wildcards, input, output: io_args(input, output),
        config=as_json(
            {
                **config["knowledge"],
                "excluded_evidence": config["annotations"]["excluded_evidence"],
            }
        ),
    shell:
        "{params.cli} knowledge {params.io} --params {params.config:q} 2> {log}"
