# Each gene's text → K facet paragraphs or NONE. Editing resources/facets.yaml or the backend reruns this.
# With an LLM backend (vllm, openai, transformers) the model runs in rule facets_llm, whose prompt
# files are its inputs: editing the prompt reruns facets_llm, facets and what follows, nothing before.


rule facets_llm:
    input:
        unpack(chat_template_input),
        unpack(model_chain_first),
        gene_text=rules.enrich.output.gene_text,
        facets_yaml=config["facets"]["spec"],
        prompt_system=config["facets"]["llm"]["prompts"]["system"],
        prompt_user=config["facets"]["llm"]["prompts"]["user"],
        prompt_examples=config["facets"]["llm"]["prompts"]["examples"],
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
    conda:
        "../envs/facets_llm.yaml"
    resources:
        gpu=facets_llm_gpus(),
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(facets_llm_params()),
    shell:
        "{params.cli} facets_llm {params.io} --params {params.config:q} 2> {log}"


rule facets:
    input:
        unpack(facets_llm_inputs),
        unpack(model_chain_first),
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
    conda:
        "../envs/facets.yaml"
    params:
        cli=CLI,
        io=stage_io,
        config=as_json(facets_params()),
    shell:
        "{params.cli} facets {params.io} --params {params.config:q} 2> {log}"
