# Genes with thin text get a marked paragraph about their nearest neighbours.


rule fetch_string:
    input:
        org_db=annotation_db("org_hs_eg"),
        code=stage_code("fetch_string"),
    output:
        edges=f"{config['enrich']['string_files']['cache_dir']}/9606.string_v12_entrez_edges.min{string_keep_score()}.tsv.gz",
    log:
        log_path("fetch_string"),
    benchmark:
        benchmark_path("fetch_string")
    conda:
        "../envs/knowledge.yaml"
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(
            {
                "string_files": {
                    **config["enrich"]["string_files"],
                    "min_combined_score": string_keep_score(),
                }
            }
        ),
    shell:
        "{params.cli} fetch_string {params.io} --params {params.config:q} 2> {log}"


rule enrich:
    input:
        unpack(string_edge_input),
        unpack(knowledge_tables),
        gene_text=rules.knowledge.output.gene_text,
        org_db=annotation_db("org_hs_eg"),
        go_db=annotation_db("go"),
        code=stage_code("enrich"),
    output:
        gene_text=f"{OUT}/{{gene_set}}/enrich/gene_text.parquet",
        report=f"{OUT}/{{gene_set}}/enrich/enrich_report.json",
    log:
        log_path("{gene_set}/enrich"),
    benchmark:
        benchmark_path("{gene_set}/enrich")
    conda:
        "../envs/knowledge.yaml"
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(with_evidence(source_stage_params("enrich"))),
    shell:
        "{params.cli} enrich {params.io} --params {params.config:q} 2> {log}"
