# The gene universe: perturbed genes (+ config genes.extra and the genes of predict's perturbations) mapped to Entrez ids via org.Hs.eg.db aliases.


rule genes:
    input:
        h5ad=rules.dataset.output.h5ad,
        org_db=annotation_db("org_hs_eg"),
        previous_symbols=config["genes"]["previous_symbols"],
        code=stage_code("genes"),
    output:
        genes=f"{OUT}/genes/genes.tsv",
    log:
        log_path("genes"),
    conda:
        "../envs/knowledge.yaml"
    params:
        cli=CLI,
        io=lambda wildcards, input, output: io_args(input, output),
        config=as_json(genes_params()),
    shell:
        "{params.cli} genes {params.io} --params {params.config:q} 2> {log}"
