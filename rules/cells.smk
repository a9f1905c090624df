# Frozen cell-state embeddings of the control cells.


rule cells:
    input:
        h5ad=rules.dataset.output.h5ad,
        code=stage_code("cells"),
    output:
        embeddings=f"{OUT}/cells/control_embeddings.safetensors",
    log:
        log_path("cells"),
    benchmark:
        benchmark_path("cells")
    conda:
        "../envs/cells.yaml"
    params:
        cli=CLI,
        io=lambda wildcards, input, output: io_args(input, output),
        config=as_json(config["cells"]),
    shell:
        "{params.cli} cells {params.io} --params {params.config:q} 2> {log}"
