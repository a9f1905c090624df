# Gene function text, one sentence at a time with its source. Network sources (mygene, entrez, uniprot)
# need no input file; their per-gene answers are cached in knowledge.cache_dir, which is not an output,
# so a rerun (or a run after a killed one) fetches only the genes missing there.


rule knowledge:
    input:
        unpack(knowledge_tables),
        genes=rules.genes.output.genes,
        org_db=annotation_db("org_hs_eg"),
        go_db=annotation_db("go"),
        code=stage_code("knowledge"),
    output:
        gene_text=f"{OUT}/{{gene_set}}/knowledge/gene_text.parquet",
        failures=f"{OUT}/{{gene_set}}/knowledge/failures.tsv",
        report=f"{OUT}/{{gene_set}}/knowledge/knowledge_report.json",
    log:
        log_path("{gene_set}/knowledge"),
    benchmark:
        benchmark_path("{gene_set}/knowledge")
    conda:
        "../envs/knowledge.yaml"
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(with_evidence(source_stage_params("knowledge"))),
    shell:
        "{params.cli} knowledge {params.io} --params {params.config:q} 2> {log}"
