# Pretrained models (the facet encoder, the LLM, the scGPT checkpoint; registry PRETRAINED_MODELS),
# downloaded once where Snakemake runs (a workstation, a cluster's login node: compute nodes often have
# no internet) into config 'models.dir', verified, at a pinned revision; a null revision resolves once and
# is kept in config 'models.lock'. The rules that load a model take its manifest and read the local copy
# with the hubs' offline switches on. A cache of pinned files, not derived data: its code is no input.


if FETCHED_MODELS:

    rule fetch_models:
        output:
            manifest=model_manifest("{model}"),
        log:
            log_path("fetch_models/{model}"),
        wildcard_constraints:
            model="|".join(FETCHED_MODELS),
        localrule: True
        conda:
            "../envs/knowledge.yaml"
        params:
            cli=CLI,
            io=stage_io,
            config=lambda wildcards: as_json(FETCHED_MODELS[wildcards.model]),
        shell:
            "{params.cli} fetch_models {params.io} --params {params.config:q} 2> {log}"
