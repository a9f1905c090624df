# The gene universe: perturbed genes (+ config genes.extra) mapped to Entrez ids via org.Hs.eg.db aliases.

rule genes:
    input:
        h5ad=rules.dataset.output.h5ad,
        org_db=annotation_db("org_hs_eg"),
        code=stage_code("genes"),
    output:
        genes=f"{OUT}/genes/genes.tsv",
    log:
        log_path("genes"),
    params:
        io=lambda wildcards, input, output: io_args(input, output),
        config=as_json(config["genes"]),
    conda:
        "../envs/knowledge.yaml"
    shell:
        "{CLI} genes {params.io} --params {params.config:q} 2> {log}"
