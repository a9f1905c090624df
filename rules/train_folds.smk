# Cross-validation (evaluate.protocol cross_validation): one variant and seed trained on every fold's
# training perturbations, in one job (the fold count of leave-one-out is only known from the data).


rule train_folds:
    input:
        h5ad=rules.dataset.output.h5ad,
        folds=rules.folds.output.folds,
        genes=in_model_set(rules.genes.output.genes),
        facet_tensor=in_model_set(rules.facet_embed.output.tensor),
        cell_embedding=rules.cells.output.embeddings,
        code=stage_code("train_folds"),
    output:
        weights=f"{OUT}/cv/train/{{variant}}/seed{{seed}}/models.safetensors",
        config=f"{OUT}/cv/train/{{variant}}/seed{{seed}}/models.json",
    log:
        f"{OUT}/logs/train_folds/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_folds/{{variant}}/seed{{seed}}.tsv"
    wildcard_constraints:
        variant="[a-z0-9_]+",
        seed=r"\d+",
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        gpu=stage_gpus("train_folds"),
    params:
        cli=CLI,
        io=stage_io,
        config=lambda wildcards: as_json(
            train_params(wildcards.variant, wildcards.seed)
        ),
    shell:
        "{params.cli} train_folds {params.io} --params {params.config:q} 2> {log}"
