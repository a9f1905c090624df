# Cross-validation folds over every perturbation (evaluate.protocol cross_validation): k-fold or
# leave-one-out, once per split seed, keeping the split kind's constraint for doubles.


rule folds:
    input:
        split=rules.dataset.output.split,
        code=stage_code("folds"),
    output:
        folds=f"{OUT}/cv/folds.json",
    log:
        log_path("folds"),
    conda:
        "../envs/train.yaml"
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(config["evaluate"]["cross_validation"]),
    shell:
        "{params.cli} folds {params.io} --params {params.config:q} 2> {log}"
