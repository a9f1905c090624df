# Frozen cell-state embeddings of the control cells: pca, scvi or scgpt (config 'cells.encoder').


rule cells:
    input:
        unpack(cell_encoder_checkpoint),
        h5ad=rules.dataset.output.h5ad,
        code=stage_code("cells"),
    output:
        embeddings=f"{OUT}/cells/control_embeddings.safetensors",
    log:
        log_path("cells"),
    benchmark:
        benchmark_path("cells")
    conda:
        "../envs/cell_encoders.yaml"
    resources:
        gpu=cells_gpus(),
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(cells_params()),
    shell:
        "{params.cli} cells {params.io} --params {params.config:q} 2> {log}"
