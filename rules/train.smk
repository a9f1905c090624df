# Train the DyGenePT adapters (cell query, facet attention, shift MLPs, decoder) for one variant of the
# network (config train.variants) and one seed (train.seeds); the backbones stay frozen.


rule train:
    input:
        h5ad=rules.dataset.output.h5ad,
        split=rules.dataset.output.split,
        genes=in_model_set(rules.genes.output.genes),
        facet_tensor=in_model_set(rules.facet_embed.output.tensor),
        cell_embedding=rules.cells.output.embeddings,
        code=stage_code("train"),
    output:
        weights=f"{OUT}/train/{{variant}}/seed{{seed}}/model.safetensors",
        config=f"{OUT}/train/{{variant}}/seed{{seed}}/model.json",
    log:
        f"{OUT}/logs/train/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{variant}}/seed{{seed}}.tsv"
    wildcard_constraints:
        variant="[a-z0-9_]+",
        seed=r"\d+",
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        gpu=train_gpus(),
    params:
        cli=CLI,
        io=stage_io,
        config=lambda wildcards: as_json(
            train_params(wildcards.variant, wildcards.seed)
        ),
    shell:
        "{params.cli} train {params.io} --params {params.config:q} 2> {log}"
