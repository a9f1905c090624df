# Train the DyGenePT adapters (cell query, facet attention, shift MLP, decoder); backbones stay frozen.


rule train:
    input:
        h5ad=rules.dataset.output.h5ad,
        split=rules.dataset.output.split,
        genes=rules.genes.output.genes,
        facet_tensor=rules.facet_embed.output.tensor,
        cell_embedding=rules.cells.output.embeddings,
        code=stage_code("train"),
    output:
        weights=f"{OUT}/train/model.safetensors",
        config=f"{OUT}/train/model.json",
    log:
        log_path("train"),
    benchmark:
        benchmark_path("train")
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        cli=CLI,
        io=lambda wildcards, input, output: io_args(input, output),
        config=as_json(config["train"]),
    shell:
        "{params.cli} train {params.io} --params {params.config:q} 2> {log}"
