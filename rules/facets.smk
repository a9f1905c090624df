# Each gene's text → K facet paragraphs or NONE. Editing resources/facets.yaml or the backend reruns this.
# With an LLM backend (vllm, openai, transformers) the model runs in rule facets_llm, whose prompt
# files are its inputs: editing the prompt reruns facets_llm, facets and what follows, nothing before.
# With config 'shards' > 1, the model (and an embedding backend's encoder) runs in rule <stage>_shard,
# once per shard of genes, and rule <stage> gathers the shards (see SHARDS in rules/common.smk).


rule facets_llm:
    input:
        unpack(llm_prompt_inputs),
        unpack(shard_parts("facets_llm")),
        **fetched_model("llm"),
        gene_text=rules.enrich.output.gene_text,
        org_db=annotation_db("org_hs_eg"),
        go_db=annotation_db("go"),
        code=stage_code("facets_llm"),
    output:
        records=f"{OUT}/{{gene_set}}/facets/llm_records.json",
        failures=f"{OUT}/{{gene_set}}/facets/llm_failures.jsonl",
        guard=f"{OUT}/{{gene_set}}/facets/llm_guard.json",
    log:
        log_path("{gene_set}/facets_llm"),
    benchmark:
        benchmark_path("{gene_set}/facets_llm")
    group:
        llm_gather_group()
    conda:
        "../envs/facets_llm.yaml"
    resources:
        gpu=stage_gpus("facets_llm"),
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(facets_llm_params()),
    shell:
        "{params.cli} facets_llm {params.io} --params {params.config:q} 2> {log}"


if sharded("facets_llm"):

    rule facets_llm_shard:
        input:
            unpack(llm_prompt_inputs),
            **fetched_model("llm"),
            gene_text=rules.enrich.output.gene_text,
            code=stage_code("facets_llm_shard"),
        output:
            part=shard_output("facets", "llm_", ".json"),
        log:
            log_path("{gene_set}/facets_llm_shard{shard}"),
        benchmark:
            benchmark_path("{gene_set}/facets_llm_shard{shard}")
        wildcard_constraints:
            shard=r"\d+",
        conda:
            "../envs/facets_llm.yaml"
        resources:
            gpu=stage_gpus("facets_llm_shard"),
        params:
            cli=CLI,
            io=stage_io,
            config=shard_params(facets_llm_params()),
        shell:
            "{params.cli} facets_llm_shard {params.io} --params {params.config:q} 2> {log}"


rule facets:
    input:
        unpack(facets_llm_inputs),
        unpack(shard_parts("facets")),
        **facet_backend_models(),
        gene_text=rules.enrich.output.gene_text,
        facets_yaml=config["facets"]["spec"],
        org_db=annotation_db("org_hs_eg"),
        go_db=annotation_db("go"),
        code=stage_code("facets"),
    output:
        facets=f"{OUT}/{{gene_set}}/facets/facets.parquet",
        report=f"{OUT}/{{gene_set}}/facets/facets_report.json",
    log:
        log_path("{gene_set}/facets"),
    benchmark:
        benchmark_path("{gene_set}/facets")
    group:
        llm_gather_group()
    conda:
        "../envs/facets.yaml"
    resources:
        gpu=stage_gpus("facets"),
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(facets_params()),
    shell:
        "{params.cli} facets {params.io} --params {params.config:q} 2> {log}"


if sharded("facets"):

    rule facets_shard:
        input:
            **facet_backend_models(),
            gene_text=rules.enrich.output.gene_text,
            facets_yaml=config["facets"]["spec"],
            org_db=annotation_db("org_hs_eg"),
            go_db=annotation_db("go"),
            code=stage_code("facets_shard"),
        output:
            part=shard_output("facets", "facets_", ".parquet"),
        log:
            log_path("{gene_set}/facets_shard{shard}"),
        benchmark:
            benchmark_path("{gene_set}/facets_shard{shard}")
        wildcard_constraints:
            shard=r"\d+",
        conda:
            "../envs/facets.yaml"
        resources:
            gpu=stage_gpus("facets_shard"),
        params:
            cli=CLI,
            io=stage_io,
            config=shard_params(facets_params()),
        shell:
            "{params.cli} facets_shard {params.io} --params {params.config:q} 2> {log}"
