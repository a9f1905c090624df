# Fetch the Bioconductor org.Hs.eg.db and GO.db SQLite databases once into the cache directory.


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
        config=as_json(
            {
                key: config["annotations"][key]
                for key in ("apt_versions", "tarball_urls")
            }
        ),
    shell:
        "{params.cli} annotations {params.io} --params {params.config:q} 2> {log}"
