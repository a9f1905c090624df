# Validate the Perturb-seq data early; write it canonical, with the split and each perturbation's DE genes.


rule dataset:
    input:
        h5ad=config["dataset"]["path"],
        code=stage_code("dataset"),
    output:
        h5ad=f"{OUT}/data/dataset.h5ad",
        split=f"{OUT}/data/split.json",
        de_genes=f"{OUT}/data/de_genes.json",
        card=f"{OUT}/data/data_card.json",
    log:
        log_path("dataset"),
    benchmark:
        benchmark_path("dataset")
    conda:
        "../envs/cells.yaml"
    params:
        cli=CLI,
        io=lambda wildcards, input, output: io_args(input, output),
        config=as_json(config["dataset"]),
    shell:
        "{params.cli} dataset {params.io} --params {params.config:q} 2> {log}"
