"""The pipeline's stages: one module per Snakemake rule, each exposing ``run(inputs, outputs, params)``.

A stage imports libraries (the modules and packages beside ``stages``), never another stage.
"""
