# Published data sets are fetched once, verified (a cache: its code is no input); then any source is checked early and written canonical,
# with the split, each perturbation's DE genes and a data card.


rule fetch_dataset:
    output:
        h5ad=f"{config['dataset']['cache_dir']}/{config['dataset']['name']}.h5ad",
    log:
        log_path("fetch_dataset"),
    conda:
        "../envs/knowledge.yaml"
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(section("dataset", "source", "name", "download")),
    shell:
        "{params.cli} fetch_dataset {params.io} --params {params.config:q} 2> {log}"


rule dataset:
    input:
        unpack(dataset_optional_inputs),
        h5ad=dataset_h5ad(),
        org_db=annotation_db("org_hs_eg"),
        previous_symbols=config["genes"]["previous_symbols"],
        code=stage_code("dataset"),
    output:
        h5ad=f"{OUT}/data/dataset.h5ad",
        split=f"{OUT}/data/split.json",
        de_genes=f"{OUT}/data/de_genes.json",
        card=f"{OUT}/data/data_card.json",
    log:
        log_path("dataset"),
    benchmark:
        benchmark_path("dataset")
    conda:
        "../envs/dataset.yaml"
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(dataset_params()),
    shell:
        "{params.cli} dataset {params.io} --params {params.config:q} 2> {log}"
