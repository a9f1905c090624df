"""Facets written by a language model: prompts, answer validation, a per-gene cache and the engines
that run the model (``vllm``, an ``openai``-compatible server, plain ``transformers``). The guard that
measures how well each answer is grounded in the gene's text and agrees with its GO annotations is
``facet_backends.guard`` (it scores any backend's facets).

The LLM stage (``stages/facets_llm``) runs an engine over every gene not yet cached and writes the
validated records; the facets stage reads them through ``records`` (the backend the registry names).
"""
