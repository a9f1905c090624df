# The gene universe, mapped to Entrez ids via org.Hs.eg.db aliases: the perturbed genes and config
# genes.extra for the model ({gene_set} "model"), and also the genes of predict's perturbations for the
# screen ({gene_set} "screen"; see MODEL_GENE_SET in rules/common.smk).


rule genes:
    input:
        h5ad=rules.dataset.output.h5ad,
        org_db=annotation_db("org_hs_eg"),
        previous_symbols=config["genes"]["previous_symbols"],
        code=stage_code("genes"),
    output:
        genes=f"{OUT}/{{gene_set}}/genes/genes.tsv",
    log:
        log_path("{gene_set}/genes"),
    conda:
        "../envs/knowledge.yaml"
    params:
        cli=CLI,
        io=stage_io,
        config=lambda wildcards: as_json(genes_params(wildcards.gene_set)),
    shell:
        "{params.cli} genes {params.io} --params {params.config:q} 2> {log}"
