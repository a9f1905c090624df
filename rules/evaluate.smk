# Every variant and seed and every baseline on the held-out perturbations (the split's test part, or every
# fold's under evaluate.protocol cross_validation), beside the noise ceiling, with paired bootstrap
# intervals of each method's difference to train_mean and to the best baseline.


rule evaluate:
    input:
        unpack(trained_checkpoints),
        h5ad=rules.dataset.output.h5ad,
        split=rules.dataset.output.split,
        de_genes=rules.dataset.output.de_genes,
        genes=in_model_set(rules.genes.output.genes),
        facet_tensor=in_model_set(rules.facet_embed.output.tensor),
        cell_embedding=rules.cells.output.embeddings,
        code=stage_code("evaluate"),
    output:
        metrics=f"{OUT}/evaluate/metrics.json",
        per_condition=f"{OUT}/evaluate/per_condition.csv",
        facet_weights=f"{OUT}/evaluate/facet_weights.csv",
        cell_facets=f"{OUT}/evaluate/cell_facets.csv",
        de_changes=f"{OUT}/evaluate/de_changes.csv",
        predictions=f"{OUT}/evaluate/predictions.h5ad",
        interactions=f"{OUT}/evaluate/interactions.csv",
        interactions_summary=f"{OUT}/evaluate/interactions.json",
    log:
        log_path("evaluate"),
    benchmark:
        benchmark_path("evaluate")
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        gpu=stage_gpus("evaluate"),
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(on_train_device(with_interactions(evaluate_params()))),
    shell:
        "{params.cli} evaluate {params.io} --params {params.config:q} 2> {log}"
