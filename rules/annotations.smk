# Fetch the Bioconductor org.Hs.eg.db and GO.db SQLite databases once into the cache directory.
# A cache of pinned package versions, not derived data: its code is no input (editing the HTTP layer
# refetches nothing); delete the cache to fetch again.


rule fetch_annotations:
    output:
        org_hs_eg=f"{config['annotations']['cache_dir']}/{SQLITE_FILES['org_hs_eg']}",
        go=f"{config['annotations']['cache_dir']}/{SQLITE_FILES['go']}",
    log:
        log_path("fetch_annotations"),
    conda:
        "../envs/knowledge.yaml"
    params:
        cli=CLI,
        io=lambda wildcards, input, output: io_args(input, output),
        config=as_json(section("annotations", "apt_versions", "tarball_urls")),
    shell:
        "{params.cli} fetch_annotations {params.io} --params {params.config:q} 2> {log}"
