"""The engines that run a chat model over many conversations: ``vllm`` (offline, batched),
``openai`` (any OpenAI-compatible chat server over HTTP) and ``transformers`` (plain generation).

An engine answers ``complete(conversations)`` with one string per conversation, or an ``EngineError``
where it got no answer at all (the HTTP layer gave up); it never validates. Request building is kept in
pure functions (``chat_request``, ``vllm_llm_kwargs``, ``vllm_sampling_kwargs``) so it is tested
without a server or a GPU. Heavy imports (vllm, torch, transformers) stay inside the engines.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import requests

from ...errors import InputError, SetupError, needs_package
from ...io.http import (
    FetchError,
    HttpClient,
    RetryPolicy,
    TransientError,
)
from ...settings import read_fields

Message = dict[str, str]
# The openai backend's one request before any gene: a server that is down refuses the connection at
# once, and one that does not answer within this many seconds is not worth waiting for gene after gene.
PREFLIGHT_SECONDS = 5.0
# vLLM's structured outputs (``StructuredOutputsParams``) replaced ``guided_json`` in 0.12.0.
VLLM_VERSION = "0.12.0"


@dataclass(frozen=True)
class EngineError:
    """No answer came back for a conversation (the transport failed for good)."""

    reason: str


class Engine(Protocol):
    backend: str
    generated_tokens: int

    def identity(self) -> dict: ...

    def complete(self, conversations: Sequence[list[Message]]) -> list[str | EngineError]: ...


@dataclass(frozen=True)
class SamplingSettings:
    """The sampling parameters that shape an answer (part of the cache key)."""

    temperature: float
    seed: int
    max_tokens: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SamplingSettings:
        """From the validated ``facets.llm`` section."""
        return read_fields(cls, params)

    def to_dict(self) -> dict[str, Any]:
        """As the request body and the cache key spell them."""
        return asdict(self)


@dataclass(frozen=True)
class OpenAISettings:
    base_url: str
    api_key_env: str | None
    concurrency: int
    timeout_seconds: float
    attempts: int
    backoff_seconds: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> OpenAISettings:
        """From the validated ``facets.llm.openai`` section."""
        return read_fields(cls, params)


@dataclass(frozen=True)
class VllmSettings:
    tensor_parallel_size: int
    gpu_memory_utilization: float
    max_model_len: int
    dtype: str

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> VllmSettings:
        """From the validated ``facets.llm.vllm`` section."""
        return read_fields(cls, params)


@dataclass(frozen=True)
class TransformersSettings:
    device: str
    dtype: str

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TransformersSettings:
        """From the validated ``facets.llm.transformers`` section."""
        return read_fields(cls, params)


@dataclass(frozen=True)
class EngineSettings:
    """What the engines read of config ``facets.llm``: the model, the sampling, each engine's section."""

    model: str
    revision: str | None
    sampling: SamplingSettings
    openai: OpenAISettings
    vllm: VllmSettings
    transformers: TransformersSettings

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> EngineSettings:
        """From the validated ``facets.llm`` section."""
        return read_fields(
            cls,
            params,
            sampling=SamplingSettings.from_params(params),
            openai=OpenAISettings.from_params(params["openai"]),
            vllm=VllmSettings.from_params(params["vllm"]),
            transformers=TransformersSettings.from_params(params["transformers"]),
        )


# --- openai ---------------------------------------------------------------------------------------


def chat_request(
    model: str, messages: list[Message], sampling: SamplingSettings, schema: dict
) -> dict:
    """A chat-completions request body that asks for JSON matching ``schema``."""
    return {
        "model": model,
        "messages": messages,
        **sampling.to_dict(),
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "gene_facets", "strict": True, "schema": schema},
        },
    }


def chat_content(body: dict) -> tuple[str, int]:
    """(the first choice's message content, completion tokens) of a chat-completions answer."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as error:
        raise TransientError(f"answer without choices[0].message.content ({error!r})") from error
    usage = body.get("usage") or {}
    return content or "", int(usage.get("completion_tokens") or 0)


def api_key(variable: str | None) -> str | None:
    """The API key from the environment variable config names (never from a file)."""
    if not variable:
        return None
    key = os.environ.get(variable)
    if not key:
        raise InputError(
            f"config 'facets.llm.openai.api_key_env' names {variable}, which is unset. "
            f"Fix: export {variable}=<key>, or set api_key_env to null for a server without keys."
        )
    return key


@dataclass
class OpenAIEngine:
    base_url: str
    model: str
    revision: str | None
    sampling: SamplingSettings
    schema: dict
    concurrency: int
    client: HttpClient
    key: str | None = field(default=None, repr=False)
    backend: str = "openai"
    generated_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def identity(self) -> dict:
        return {
            "backend": self.backend,
            "model": self.model,
            "revision": self.revision,
            "engine": "chat-completions",
        }

    def _one(self, messages: list[Message]) -> str | EngineError:
        url = f"{self.base_url.rstrip('/')}/chat/completions"
        body = chat_request(self.model, messages, self.sampling, self.schema)
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}

        try:
            content, tokens = self.client.request(
                "POST",
                url,
                lambda response: chat_content(response.json()),
                json=body,
                headers=headers,
            )
        except FetchError as error:
            return EngineError(str(error))
        with self._lock:
            self.generated_tokens += tokens
        return content

    def complete(self, conversations: Sequence[list[Message]]) -> list[str | EngineError]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, conversations))


def short_reason(error: Exception) -> str:
    """The operating system's words for a failed connection ("[Errno 111] Connection refused"), not
    the transport library's page of nested wrappers."""
    found = re.findall(r"\[Errno -?\d+\][^'\")]*", str(error))
    return found[-1].strip() if found else type(error).__name__


def check_server(engine: OpenAIEngine) -> None:
    """One request (``GET <base_url>/models``) before any gene: a server that is down, or that refuses
    the key, stops the stage within seconds, naming the URL. Any other answer means a server listens."""
    url = f"{engine.base_url.rstrip('/')}/models"
    headers = {"Authorization": f"Bearer {engine.key}"} if engine.key else {}
    where = f"config 'facets.llm.openai.base_url' = {engine.base_url}"
    try:
        response = engine.client.session.get(url, headers=headers, timeout=PREFLIGHT_SECONDS)
    except requests.RequestException as error:
        raise SetupError(
            f"{where}: no server answers at {url} ({short_reason(error)}). Fix: start the server "
            "(e.g. `vllm serve <model>`), or set facets.llm.openai.base_url to the URL it listens on."
        ) from error
    if response.status_code in (401, 403):
        raise SetupError(
            f"{where}: the server refused the request to {url} (HTTP {response.status_code}). Fix: "
            "put a valid key in the environment variable facets.llm.openai.api_key_env names."
        )


def make_openai(
    model: str,
    revision: str | None,
    settings: OpenAISettings,
    sampling: SamplingSettings,
    schema: dict,
) -> OpenAIEngine:
    policy = RetryPolicy(
        attempts=settings.attempts,
        backoff_seconds=settings.backoff_seconds,
        timeout_seconds=settings.timeout_seconds,
    )
    engine = OpenAIEngine(
        base_url=settings.base_url,
        model=model,
        revision=revision,
        sampling=sampling,
        schema=schema,
        concurrency=settings.concurrency,
        client=HttpClient(policy, pool_size=settings.concurrency),
        key=api_key(settings.api_key_env),
    )
    check_server(engine)
    return engine


# --- vllm -----------------------------------------------------------------------------------------


def vllm_llm_kwargs(model: str, revision: str | None, settings: VllmSettings, seed: int) -> dict:
    """Arguments of ``vllm.LLM``: the pinned model, prefix caching for the shared few-shot prefix."""
    return {
        "model": model,
        "revision": revision,
        "tokenizer_revision": revision,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "max_model_len": settings.max_model_len,
        "dtype": settings.dtype,
        "enable_prefix_caching": True,
        "seed": seed,
    }


def vllm_sampling_kwargs(sampling: SamplingSettings) -> dict:
    """Arguments of ``vllm.SamplingParams`` besides ``structured_outputs``."""
    return sampling.to_dict()


class VllmEngine:
    """One ``LLM.chat`` call over a batch of conversations, constrained to the answer schema."""

    backend = "vllm"

    def __init__(
        self,
        model: str,
        revision: str | None,
        settings: VllmSettings,
        sampling: SamplingSettings,
        schema: dict,
        chat_template: str | None = None,
    ):
        with needs_package("vllm", "config 'facets.backend: vllm'"):
            import vllm

        self.model, self.revision, self.sampling, self.schema = model, revision, sampling, schema
        self.chat_template = chat_template
        self.version = vllm.__version__
        self.llm = vllm.LLM(**vllm_llm_kwargs(model, revision, settings, sampling.seed))
        self.generated_tokens = 0

    def identity(self) -> dict:
        return {
            "backend": self.backend,
            "model": self.model,
            "revision": self.revision,
            "engine": f"vllm {self.version}",
            "chat_template": self.chat_template,
        }

    def complete(self, conversations: Sequence[list[Message]]) -> list[str | EngineError]:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        params = SamplingParams(
            **vllm_sampling_kwargs(self.sampling),
            structured_outputs=StructuredOutputsParams(json=self.schema),
        )
        outputs = self.llm.chat(
            list(conversations), params, use_tqdm=False, chat_template=self.chat_template
        )
        self.generated_tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
        return [o.outputs[0].text for o in outputs]


# --- transformers ---------------------------------------------------------------------------------


class TransformersEngine:
    """Greedy (or seeded sampling) generation with a Hugging Face causal LM, one conversation at a time."""

    backend = "transformers"

    def __init__(
        self,
        model: str,
        revision: str | None,
        settings: TransformersSettings,
        sampling: SamplingSettings,
        chat_template: str | None = None,
    ):
        import torch
        import transformers

        self.model_id, self.revision, self.sampling = model, revision, sampling
        self.version = transformers.__version__
        self.device = settings.device
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(model, revision=revision)
        if chat_template is not None:
            self.tokenizer.chat_template = chat_template
        self.chat_template = self.tokenizer.chat_template
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            model, revision=revision, dtype=getattr(torch, settings.dtype)
        ).to(self.device)
        self.model.eval()
        self.generated_tokens = 0

    def identity(self) -> dict:
        return {
            "backend": self.backend,
            "model": self.model_id,
            "revision": self.revision,
            "engine": f"transformers {self.version}",
            "chat_template": self.chat_template,
        }

    def complete(self, conversations: Sequence[list[Message]]) -> list[str | EngineError]:
        import torch

        answers: list[str | EngineError] = []
        for messages in conversations:
            prompt = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(
                self.device
            )
            torch.manual_seed(self.sampling.seed)
            greedy = self.sampling.temperature == 0
            with torch.no_grad():
                output = self.model.generate(
                    **encoded,
                    max_new_tokens=self.sampling.max_tokens,
                    do_sample=not greedy,
                    temperature=None if greedy else self.sampling.temperature,
                    pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                )
            new = output[0, encoded["input_ids"].shape[1] :]
            self.generated_tokens += int(new.shape[0])
            answers.append(self.tokenizer.decode(new, skip_special_tokens=True))
        return answers


def vllm_engine(settings: EngineSettings, schema: dict, chat_template: str | None) -> VllmEngine:
    if not settings.revision:
        raise InputError(
            "config 'facets.llm.revision' is empty: the vllm backend runs a pinned model only. "
            "Fix: set it to the commit of the model's Hugging Face repository."
        )
    return VllmEngine(
        settings.model, settings.revision, settings.vllm, settings.sampling, schema, chat_template
    )


def openai_engine(
    settings: EngineSettings, schema: dict, chat_template: str | None
) -> OpenAIEngine:
    """An OpenAI-style server applies its own chat template."""
    return make_openai(
        settings.model, settings.revision, settings.openai, settings.sampling, schema
    )


def transformers_engine(
    settings: EngineSettings, schema: dict, chat_template: str | None
) -> TransformersEngine:
    return TransformersEngine(
        settings.model, settings.revision, settings.transformers, settings.sampling, chat_template
    )


# The engines by the names registry.LLM_ENGINES gives, each built from config 'facets.llm'.
ENGINES: dict[str, Callable[[EngineSettings, dict, str | None], Engine]] = {
    "vllm": vllm_engine,
    "openai": openai_engine,
    "transformers": transformers_engine,
}


def make_engine(
    backend: str, settings: EngineSettings, schema: dict, chat_template: str | None = None
) -> Engine:
    """The engine config 'facets.backend' selects, with the settings of config 'facets.llm'.

    ``chat_template`` (Jinja text) replaces the model's own, for vllm and transformers; an OpenAI-style
    server applies its own template.
    """
    if backend not in ENGINES:
        raise InputError(f"config 'facets.backend' is '{backend}', which is no LLM backend")
    return ENGINES[backend](settings, schema, chat_template)
