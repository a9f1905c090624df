# Facet texts → (genes, K, D) tensor + mask with a frozen text encoder.


rule facet_embed:
    input:
        facets=rules.facets.output.facets,
        code=stage_code("facet_embed"),
    output:
        tensor=f"{OUT}/{{gene_set}}/facet_embed/facet_tensor.safetensors",
    log:
        log_path("{gene_set}/facet_embed"),
    benchmark:
        benchmark_path("{gene_set}/facet_embed")
    conda:
        "../envs/facet_embed.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        gpu=facet_embed_gpus(),
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(config["facet_embed"]),
    shell:
        "{params.cli} facet_embed {params.io} --params {params.config:q} 2> {log}"
