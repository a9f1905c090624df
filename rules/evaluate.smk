# The model and the baselines on held-out perturbations, plus the facet weights.


rule evaluate:
    input:
        h5ad=rules.dataset.output.h5ad,
        split=rules.dataset.output.split,
        de_genes=rules.dataset.output.de_genes,
        genes=rules.genes.output.genes,
        facet_tensor=rules.facet_embed.output.tensor,
        cell_embedding=rules.cells.output.embeddings,
        weights=rules.train.output.weights,
        config=rules.train.output.config,
        code=stage_code("evaluate"),
    output:
        metrics=f"{OUT}/evaluate/metrics.json",
        per_condition=f"{OUT}/evaluate/per_condition.csv",
        facet_weights=f"{OUT}/evaluate/facet_weights.csv",
    log:
        log_path("evaluate"),
    benchmark:
        benchmark_path("evaluate")
    conda:
        "../envs/train.yaml"
    threads: 2
    params:
        cli=CLI,
        io=lambda wildcards, input, output: io_args(input, output),
    shell:
        "{params.cli} evaluate {params.io} 2> {log}"
