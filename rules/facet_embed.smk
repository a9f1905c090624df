# Facet texts → (genes, K, D) tensor + mask with a frozen text encoder. With config 'shards' > 1 the
# encoder runs in rule facet_embed_shard, once per shard of genes (one GPU each on a cluster), and this
# rule gathers the shards' tensors into the one an unsharded run writes, byte for byte.


rule facet_embed:
    input:
        unpack(shard_parts("facet_embed")),
        **fetched_model("facet_encoder"),
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
        gpu=stage_gpus("facet_embed"),
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(config["facet_embed"]),
    shell:
        "{params.cli} facet_embed {params.io} --params {params.config:q} 2> {log}"


if sharded("facet_embed"):

    rule facet_embed_shard:
        input:
            **fetched_model("facet_encoder"),
            facets=rules.facets.output.facets,
            code=stage_code("facet_embed_shard"),
        output:
            part=shard_output("facet_embed", "", ".safetensors"),
        log:
            log_path("{gene_set}/facet_embed_shard{shard}"),
        benchmark:
            benchmark_path("{gene_set}/facet_embed_shard{shard}")
        wildcard_constraints:
            shard=r"\d+",
        conda:
            "../envs/facet_embed.yaml"
        threads: 2
        resources:
            mem_mb=4000,
            gpu=stage_gpus("facet_embed_shard"),
        params:
            cli=CLI,
            io=stage_io,
            config=shard_params(config["facet_embed"]),
        shell:
            "{params.cli} facet_embed_shard {params.io} --params {params.config:q} 2> {log}"
