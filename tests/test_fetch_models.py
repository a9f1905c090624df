"""Rule fetch_models against a loopback server that speaks the Hugging Face Hub's file API, serving tiny
real models built here from a config: pinned and unpinned revisions (the lock), resumed transfers,
corrupted files and wrong pins, a Hub that cannot be reached, gated models; and the compute stages that
then open the fetched directories with the hubs' offline switches set."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from tiny_bert import save_tiny_bert

from dygenept.config_defaults import merged, section_defaults
from dygenept.errors import InputError
from dygenept.pretrained import lock as model_lock
from dygenept.pretrained.fetch import ModelFetchError, select_files
from dygenept.pretrained.local import FetchedModel
from dygenept.pretrained.offline import OFFLINE_SWITCHES, hubs_offline
from dygenept.pretrained.roles import fetch_settings
from dygenept.registry import CELL_ENCODERS
from dygenept.stages import fetch_models
from dygenept.text_encoders import TextEncoder, TextEncoderSettings

from conftest import ROOT
from loopback import FileServer, HubServer

BERT = "org/tiny-bert"
LLAMA = "org/tiny-llama"
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "gene", "kinase", "cell", "cycle", "the"]
# Files a Hub repository holds that a model directory does not need: they are never fetched.
UNNEEDED = {
    "README.md": b"# tiny\n",
    ".gitattributes": b"*.safetensors filter=lfs\n",
    "flax_model.msgpack": b"\x00" * 64,
    "onnx/model.onnx": b"\x00" * 64,
}


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A BERT encoder built from a config, saved as the Hub's BERT repositories hold it."""
    # large enough (280 kB) that half of it spans several of the downloader's 64 kB chunks
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), VOCAB, hidden_size=64)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    """A 2-layer Llama with random weights and a byte-level BPE tokenizer with a chat template."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    path = tmp_path_factory.mktemp("tiny_llama")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>", "<unk>"])
    tokenizer.train_from_iterator(['the gene kinase cell cycle {}":,'] * 50, trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=fast.vocab_size + 3,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config_for(tmp_path: Path, endpoint: str, **sections) -> dict:
    """The config sections fetch_models reads: the schema's defaults, the demo's encoder source
    switched to the Hub, then ``sections``."""
    config = {name: section_defaults(name) for name in ("models", "facet_embed", "facets", "cells")}
    config["models"] |= {
        "dir": str(tmp_path / "models"),
        "lock": str(tmp_path / "models.lock.json"),
        "hub_endpoint": endpoint,
        "attempts": 3,
        "timeout_seconds": 5,
    }
    config["facet_embed"]["encoder"] |= {"package": None, "hub_id": BERT, "sha256": None}
    return merged(config, sections)


def fetch(
    config: dict, role: str, tmp_path: Path, name: str = "manifest.json"
) -> tuple[dict, dict]:
    """Run the stage for one role: (its details, the manifest it wrote)."""
    params = fetch_settings(config)[role]
    manifest = tmp_path / name
    details = fetch_models.run({}, {"manifest": manifest}, params)
    return details, json.loads(manifest.read_text())


@pytest.fixture
def hub(tiny_bert):
    server = HubServer()
    server.commit = server.push(BERT, {**files_of(tiny_bert), **UNNEEDED})
    with server:
        yield server


def test_a_pinned_model_is_fetched_verified_and_encodes_offline(
    hub, tiny_bert, tmp_path, monkeypatch
):
    weights = (tiny_bert / "model.safetensors").read_bytes()
    config = config_for(
        tmp_path,
        hub.url(),
        facet_embed={"encoder": {"revision": hub.commit, "sha256": sha256(weights)}},
    )
    details, manifest = fetch(config, "facet_encoder", tmp_path)
    directory = Path(manifest["directory"])
    assert directory == tmp_path / "models" / "hub" / BERT / hub.commit
    assert manifest["revision"] == hub.commit and details["revision_from"] == "config"
    assert manifest["weights_sha256"] == sha256(weights) and manifest["weights_sha256_pinned"]
    # what a model directory needs, and nothing else the repository holds
    assert files_of(directory) == files_of(tiny_bert)
    # the compute stage opens the fetched directory with the offline switches on, and gets the
    # same vectors as from the original directory
    import transformers

    switches = []
    load = transformers.AutoModel.from_pretrained

    def offline_load(*args, **kwargs):
        switches.append({name: os.environ.get(name) for name in OFFLINE_SWITCHES})
        return load(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", offline_load)
    spec = {"package": None, "hub_id": BERT, "revision": hub.commit, "sha256": sha256(weights)}
    params = merged(section_defaults("facet_embed"), {"encoder": {**spec, "max_length": 16}})
    fetched = TextEncoder.from_settings(
        TextEncoderSettings.from_params(params), tmp_path / "manifest.json"
    )
    assert switches == [dict.fromkeys(OFFLINE_SWITCHES, "1")]
    assert fetched.files.model_id == BERT and fetched.files.source == f"hub {BERT}@{hub.commit}"
    local = TextEncoder.from_settings(
        TextEncoderSettings.from_params(
            merged(params, {"encoder": {"path": str(tiny_bert), "hub_id": None}})
        )
    )
    assert local.files.model_id == str(tiny_bert)  # the path it loaded, whatever hub_id says
    texts = ["gene kinase", "the cell cycle"]
    np.testing.assert_array_equal(fetched.encode(texts), local.encode(texts))


def test_the_offline_switches_are_restored(monkeypatch):
    from huggingface_hub import constants

    for name in OFFLINE_SWITCHES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with hubs_offline():
        assert all(os.environ[name] == "1" for name in OFFLINE_SWITCHES)
        assert constants.HF_HUB_OFFLINE
    assert not any(name in os.environ for name in OFFLINE_SWITCHES)
    assert not constants.HF_HUB_OFFLINE


def test_only_the_files_a_model_directory_needs_are_chosen():
    paths = [
        "config.json",
        "model.safetensors",
        "pytorch_model.bin",
        "tf_model.h5",
        "flax_model.msgpack",
        "onnx/model.onnx",
        "onnx/config.json",
        "1_Pooling/config.json",
        "tokenizer.json",
        "vocab.txt",
        "README.md",
        ".gitattributes",
    ]
    assert select_files(paths) == [
        "1_Pooling/config.json",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
    ]
    # no safetensors: the PyTorch shards
    shards = ["config.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    assert select_files(shards) == shards


def test_a_null_revision_resolves_once_and_the_lock_keeps_it(hub, tiny_bert, tmp_path, caplog):
    config = config_for(tmp_path, hub.url(), facet_embed={"encoder": {"revision": None}})
    details, manifest = fetch(config, "facet_encoder", tmp_path)
    first = hub.commit
    assert manifest["revision"] == first and details["revision_from"] == "resolved main"
    locked = model_lock.read_lock(tmp_path / "models.lock.json")[BERT]
    assert (locked.revision, locked.resolved_from, locked.key) == (
        first,
        "main",
        "facet_embed.encoder",
    )
    assert locked.weights_sha256 == manifest["weights_sha256"]
    # the repository moves on; a later run fetches the locked commit, offline, and says so
    hub.push(BERT, {**files_of(tiny_bert), "vocab.txt": b"[PAD]\n[UNK]\nother\n"})
    hub.requests.clear()
    caplog.set_level("INFO")
    details, again = fetch(config, "facet_encoder", tmp_path, "again.json")
    assert again == manifest and details["revision_from"] == "lock"
    assert hub.requests == []  # verified before: not even the Hub's API is asked
    assert f"is locked to commit {first}" in caplog.text
    assert (tmp_path / "manifest.json").read_bytes() == (tmp_path / "again.json").read_bytes()
    # deleting the entry moves to the current commit
    (tmp_path / "models.lock.json").write_text("{}")
    _, moved = fetch(config, "facet_encoder", tmp_path, "moved.json")
    assert moved["revision"] == hub.refs[BERT]["main"] != first


def test_broken_transfers_are_retried_and_resumed(tiny_bert, tmp_path):
    server = HubServer()
    commit = server.push(BERT, files_of(tiny_bert))
    weights = f"/{BERT}/resolve/{commit}/model.safetensors"
    server.faults = {
        f"/api/models/{BERT}/revision/main": ["503"],
        weights: ["503", "truncate"],
        f"/{BERT}/resolve/{commit}/config.json": ["truncate"],
    }
    with server:
        config = config_for(tmp_path, server.url(), facet_embed={"encoder": {"revision": None}})
        _, manifest = fetch(config, "facet_encoder", tmp_path)
    ranges = [r for method, path, r in server.requests if path == weights]
    assert ranges[0] is None and ranges[-1] and ranges[-1].startswith("bytes=")
    size = len((tiny_bert / "model.safetensors").read_bytes())
    assert 0 < int(ranges[-1].split("=")[1].rstrip("-")) < size  # resumed, not started again
    directory = Path(manifest["directory"])
    assert files_of(directory) == files_of(tiny_bert)
    assert not list(directory.rglob("*.part"))


def test_a_corrupted_download_is_removed_and_named(tiny_bert, tmp_path):
    server = HubServer()
    commit = server.push(BERT, files_of(tiny_bert))
    server.faults = {f"/{BERT}/resolve/{commit}/model.safetensors": ["corrupt"]}
    with server:
        config = config_for(tmp_path, server.url(), facet_embed={"encoder": {"revision": commit}})
        with pytest.raises(ModelFetchError) as error:
            fetch(config, "facet_encoder", tmp_path)
    message = str(error.value)
    assert "config 'facet_embed.encoder' (org/tiny-bert)" in message and "the Hub's" in message
    assert "Fix:" in message
    directory = tmp_path / "models" / "hub" / BERT / commit
    assert not (directory / "model.safetensors").exists()
    assert not (tmp_path / "manifest.json").exists()


def test_a_wrong_pin_stops_naming_the_key_and_the_hash(hub, tiny_bert, tmp_path):
    found = sha256((tiny_bert / "model.safetensors").read_bytes())
    config = config_for(
        tmp_path,
        hub.url(),
        facet_embed={"encoder": {"revision": hub.commit, "sha256": "0" * 64}},
    )
    with pytest.raises(ModelFetchError) as error:
        fetch(config, "facet_encoder", tmp_path)
    message = str(error.value)
    assert "'facet_embed.encoder.sha256'" in message and found in message and "Fix:" in message
    assert not (tmp_path / "manifest.json").exists()


def test_a_locked_hash_is_checked_when_config_pins_none(hub, tiny_bert, tmp_path):
    config = config_for(tmp_path, hub.url(), facet_embed={"encoder": {"revision": None}})
    fetch(config, "facet_encoder", tmp_path)
    entry = model_lock.read_lock(tmp_path / "models.lock.json")[BERT]
    model_lock.record(
        tmp_path / "models.lock.json",
        BERT,
        model_lock.LockEntry(**{**vars(entry), "weights_sha256": "f" * 64}),
    )
    with pytest.raises(ModelFetchError, match="as the lock file .* pins"):
        fetch(config, "facet_encoder", tmp_path, "again.json")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_offline_first_run_names_the_model_the_key_and_the_fix(tmp_path):
    config = config_for(tmp_path, f"http://127.0.0.1:{free_port()}", models={"attempts": 1})
    config["facet_embed"]["encoder"]["revision"] = None
    with pytest.raises(ModelFetchError) as error:
        fetch(config, "facet_encoder", tmp_path)
    message = str(error.value)
    assert message.startswith("config 'facet_embed.encoder' (org/tiny-bert): could not be fetched")
    assert "snakemake --until fetch_models" in message and "'facet_embed.encoder.path'" in message


@pytest.mark.parametrize(
    "repo, revision, expected",
    [
        (BERT, "no-such-branch", "has no revision 'no-such-branch'"),
        ("org/nothing", None, "no such"),
    ],
)
def test_unknown_repositories_and_revisions_are_named(hub, tmp_path, repo, revision, expected):
    config = config_for(
        tmp_path, hub.url(), facet_embed={"encoder": {"hub_id": repo, "revision": revision}}
    )
    with pytest.raises(ModelFetchError, match=expected):
        fetch(config, "facet_encoder", tmp_path)


def test_a_gated_model_needs_the_token_from_the_environment(tiny_bert, tmp_path, monkeypatch):
    server = HubServer(token="secret")
    server.push(BERT, files_of(tiny_bert))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with server:
        config = config_for(tmp_path, server.url(), facet_embed={"encoder": {"revision": None}})
        with pytest.raises(ModelFetchError, match="export HF_TOKEN"):
            fetch(config, "facet_encoder", tmp_path)
        monkeypatch.setenv("HF_TOKEN", "secret")
        _, manifest = fetch(config, "facet_encoder", tmp_path)
    assert set(manifest["files"]) == set(files_of(tiny_bert))


def test_huggingface_hub_downloads_from_the_loopback_hub_what_we_fetch(hub, tmp_path, monkeypatch):
    """The loopback server speaks the Hub's API as huggingface_hub uses it: its own snapshot_download
    gets the same bytes for the files we fetch."""
    from huggingface_hub import constants, snapshot_download

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    config = config_for(tmp_path, hub.url(), facet_embed={"encoder": {"revision": None}})
    _, manifest = fetch(config, "facet_encoder", tmp_path)
    theirs = Path(
        snapshot_download(
            BERT,
            revision="main",
            endpoint=hub.url(),
            cache_dir=tmp_path / "hf_cache",
            allow_patterns=list(manifest["files"]),
        )
    )
    assert Path(theirs).name == manifest["revision"]  # the same commit resolved
    ours = Path(manifest["directory"])
    assert {p: (ours / p).read_bytes() for p in manifest["files"]} == {
        p: (theirs / p).read_bytes() for p in manifest["files"]
    }


def test_a_compute_stage_without_its_files_names_the_key_and_the_fix(hub, tmp_path):
    config = config_for(tmp_path, hub.url(), facet_embed={"encoder": {"revision": hub.commit}})
    _, manifest = fetch(config, "facet_encoder", tmp_path)
    (Path(manifest["directory"]) / "model.safetensors").unlink()
    with pytest.raises(InputError) as error:
        FetchedModel.read(tmp_path / "manifest.json")
    message = str(error.value)
    assert "model.safetensors missing" in message and "config 'facet_embed.encoder'" in message
    assert "--forcerun fetch_models" in message
    # and a Hub encoder given no manifest at all
    params = merged(
        section_defaults("facet_embed"),
        {"encoder": {"package": None, "hub_id": BERT, "revision": hub.commit, "sha256": None}},
    )
    with pytest.raises(InputError, match="downloaded by rule fetch_models"):
        TextEncoder.from_settings(TextEncoderSettings.from_params(params))


def test_the_llm_is_fetched_and_generates_offline(tiny_llama, tmp_path):
    from dygenept.facet_backends.llm.engines import EngineSettings, make_engine

    server = HubServer()
    commit = server.push(LLAMA, files_of(tiny_llama))
    with server:
        config = config_for(
            tmp_path,
            server.url(),
            facets={"backend": "transformers", "llm": {"model": LLAMA, "revision": None}},
        )
        _, manifest = fetch(config, "llm", tmp_path)
    assert manifest["revision"] == commit and manifest["key"] == "facets.llm"
    settings = EngineSettings.from_params(
        merged(config["facets"]["llm"], {"max_tokens": 4, "transformers": {"device": "cpu"}})
    )
    engine = make_engine(
        "transformers", settings, {}, fetched=FetchedModel.read(tmp_path / "manifest.json")
    )
    # known by its Hub id and commit (the cache key), never by the local directory
    assert engine.identity()["model"] == LLAMA and engine.identity()["revision"] == commit
    answers = engine.complete([[{"role": "user", "content": "the gene"}]])
    assert isinstance(answers[0], str) and engine.generated_tokens > 0
    with pytest.raises(InputError, match="facets.llm.model.*fetch_models"):
        make_engine("transformers", settings, {})


def tiny_scgpt_files() -> dict[str, bytes]:
    """A scGPT checkpoint in the official layout, built from its args with random weights."""
    import io

    import torch

    from dygenept.cell_encoders import scgpt

    vocab = {"<pad>": 0, "<cls>": 1, "<eoc>": 2, "TP53": 3, "MYC": 4}
    args = {
        "embsize": 8,
        "nheads": 2,
        "d_hid": 8,
        "nlayers": 1,
        "dropout": 0.0,
        "pad_token": "<pad>",
        "pad_value": -2,
        "n_bins": 51,
    }
    torch.manual_seed(0)
    module = scgpt.build_encoder(
        len(vocab), scgpt.ScGPTArgs(**args, input_emb_style="continuous"), 0
    )
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return {
        "best_model.pt": buffer.getvalue(),
        "vocab.json": json.dumps(vocab).encode(),
        "args.json": json.dumps(args).encode(),
    }


def test_a_scgpt_checkpoint_with_a_url_is_fetched_and_its_hash_locked(tmp_path):
    from dygenept.cell_encoders import scgpt

    files = tiny_scgpt_files()
    served = {f"/zoo/whole_human/{name}": data for name, data in files.items()}
    with FileServer(served, faults={"/zoo/whole_human/best_model.pt": ["truncate"]}) as server:
        config = config_for(
            tmp_path,
            "http://unused.invalid",
            cells={
                "encoder": "scgpt",
                "scgpt": {
                    "url": server.url("/zoo/whole_human"),
                    "model_dir": str(tmp_path / "scgpt"),
                },
            },
        )
        assert set(fetch_settings(config)) == {"facet_encoder", "scgpt"}
        details, manifest = fetch(config, "scgpt", tmp_path)
    assert set(manifest["files"]) == set(CELL_ENCODERS["scgpt"].checkpoint.values())
    assert manifest["weights_sha256"] == sha256(files["best_model.pt"])
    assert not manifest["weights_sha256_pinned"]
    locked = model_lock.read_lock(tmp_path / "models.lock.json")[server.url("/zoo/whole_human")]
    assert locked.weights_sha256 == manifest["weights_sha256"] and locked.key == "cells.scgpt"
    directory = FetchedModel.read(tmp_path / "manifest.json").directory
    model = scgpt.load_scgpt(
        *(directory / name for name in CELL_ENCODERS["scgpt"].checkpoint.values())
    )
    assert model.args.embsize == 8
    # a different file served later is refused against the locked hash, and removed
    (directory / "best_model.pt").unlink()
    changed = {**served, "/zoo/whole_human/best_model.pt": b"X" + files["best_model.pt"][1:]}
    with FileServer(changed) as server:
        config["cells"]["scgpt"]["url"] = server.url("/zoo/whole_human")
        model_lock.record(tmp_path / "models.lock.json", server.url("/zoo/whole_human"), locked)
        with pytest.raises(ModelFetchError, match="cells.scgpt.sha256"):
            fetch(config, "scgpt", tmp_path, "again.json")
    assert not (directory / "best_model.pt").exists()


def test_the_real_configs_fetch_what_they_name():
    import yaml

    real = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config = {
        name: merged(section_defaults(name), real.get(name, {}))
        for name in ("models", "facet_embed", "facets", "cells")
    }
    found = fetch_settings(config)
    assert found["facet_encoder"]["repo_id"] == real["facet_embed"]["encoder"]["hub_id"]
    assert found["llm"]["repo_id"] == real["facets"]["llm"]["model"]
    assert "scgpt" not in found  # config.yaml names no URL for the checkpoint
    demo = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    demo_config = {name: merged(config[name], demo.get(name, {})) for name in config}
    assert fetch_settings(demo_config) == {}  # the demo's encoder is a package
