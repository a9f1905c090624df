# An in-silico screen: the trained model's predictions for the perturbations config 'predict' lists,
# each explained by the facets the cells attended to. Their genes get facets in the screen's gene set
# (results/<outdir>/screen/); genes the model's set has keep its facets, so the screen predicts them as
# evaluate does.
# Its outputs are update(): Snakemake does not delete them before the job and restores them when it fails,
# and the stage writes each one beside the old and renames it over (io/artifacts.py), so a failing screen
# never loses the last good one (nor leaves its provenance record orphaned).


rule predict:
    input:
        unpack(screen_request_file),
        unpack(screen_checkpoints),
        h5ad=rules.dataset.output.h5ad,
        split=rules.dataset.output.split,
        genes=in_screen_set(rules.genes.output.genes),
        facet_tensor=in_model_set(rules.facet_embed.output.tensor),
        screen_facet_tensor=in_screen_set(rules.facet_embed.output.tensor),
        cell_embedding=rules.cells.output.embeddings,
        facets=in_model_set(rules.facets.output.facets),
        screen_facets=in_screen_set(rules.facets.output.facets),
        code=stage_code("predict"),
    output:
        predictions=update(f"{OUT}/predict/predictions.h5ad"),
        screen=report(
            update(f"{OUT}/predict/screen.tsv"),
            caption="../report/screen.rst",
            category="In-silico screen",
        ),
        explanations=update(f"{OUT}/predict/explanations.json"),
        page=report(
            update(f"{OUT}/predict/screen.md"),
            caption="../report/screen.rst",
            category="In-silico screen",
        ),
    log:
        log_path("predict"),
    benchmark:
        benchmark_path("predict")
    conda:
        "../envs/train.yaml"
    threads: 2
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(with_interactions(section("predict", *PREDICT_SETTINGS))),
    shell:
        "{params.cli} predict {params.io} --params {params.config:q} 2> {log}"
