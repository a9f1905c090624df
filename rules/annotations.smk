# Fetch the annotation databases (the Bioconductor org.Hs.eg.db and GO.db SQLite files; registry
# ANNOTATION_DATABASES) once into the cache directory.
# A cache of pinned package versions, not a pipeline output: the rule exists only while the cache lacks a
# database. Once they are there, no rule makes them, so --forceall (which forces every job with a rule)
# never downloads the 430 MB again, and their code is no input (editing the HTTP layer refetches nothing).
# Delete the cache (or one file) to fetch again, e.g. after changing annotations.apt_versions.


if annotations_to_fetch():

    rule fetch_annotations:
        output:
            **annotation_cache(),
        log:
            log_path("fetch_annotations"),
        localrule: True
        conda:
            "../envs/knowledge.yaml"
        params:
            cli=CLI,
            io=stage_io,
            config=as_json(section("annotations", "apt_versions", "tarball_urls")),
        shell:
            "{params.cli} fetch_annotations {params.io} --params {params.config:q} 2> {log}"
