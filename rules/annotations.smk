# Fetch the annotation databases (the Bioconductor org.Hs.eg.db and GO.db SQLite files; registry
# ANNOTATION_DATABASES) once into the cache directory.
# A cache of pinned package versions, not derived data: its code is no input (editing the HTTP layer
# refetches nothing); delete the cache to fetch again.


rule fetch_annotations:
    output:
        **annotation_cache(),
    log:
        log_path("fetch_annotations"),
    conda:
        "../envs/knowledge.yaml"
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(section("annotations", "apt_versions", "tarball_urls")),
    shell:
        "{params.cli} fetch_annotations {params.io} --params {params.config:q} 2> {log}"
