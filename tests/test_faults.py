"""A bad day on the machine, not in the input: artifacts that take the umask's mode, a full disk (a real
tiny file system where one can be made, an injected ENOSPC everywhere), a file where the output folder
should be, a folder the user cannot write, and optional packages that are not installed. Each ends in one
line that names the path or package and the fix, exit status 2, and no partial artifact."""

from __future__ import annotations

import errno
import getpass
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from dygenept import cli
from dygenept.errors import OPTIONAL_PACKAGES, SetupError
from dygenept.facet_backends.llm.engines import EngineSettings, make_engine
from dygenept.io.artifacts import (
    atomic_path,
    provenance_path,
    write_json_atomic,
    write_provenance,
)
from dygenept.stages import cells

from conftest import DEMO_DATASET_PARAMS, DEMO_H5AD, ROOT, section_params

WORKFLOW = ROOT / "workflow"


def dataset_argv(out: Path, org_db: Path) -> list[str]:
    """The dataset stage on the demo file, every output under ``out``."""
    outputs = {
        "h5ad": "dataset.h5ad",
        "split": "split.json",
        "de_genes": "de.json",
        "card": "card.json",
    }
    argv = ["dataset", "--in", f"h5ad={DEMO_H5AD}", "--in", f"org_db={org_db}"]
    for name, file in outputs.items():
        argv += ["--out", f"{name}={out / file}"]
    return [*argv, "--params", json.dumps(DEMO_DATASET_PARAMS)]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("dygenept ")]


# ---- file modes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o002, 0o664), (0o022, 0o644)])
def test_artifacts_and_their_provenance_take_the_umask_mode(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        artifact = write_json_atomic(tmp_path / "results" / "metrics.json", {"n": 1})
        write_provenance(artifact, {"stage": "test"})
        with atomic_path(tmp_path / "results" / "table.tsv") as tmp:
            pd.DataFrame({"a": [1]}).to_csv(tmp, sep="\t")
    finally:
        os.umask(previous)
    for path in (artifact, provenance_path(artifact), tmp_path / "results" / "table.tsv"):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


# ---- a full disk ----------------------------------------------------------------------------------


def tiny_filesystem_prefix(mountpoint: Path, size: str) -> list[str]:
    """A command prefix that runs a command with a tmpfs of ``size`` mounted at ``mountpoint``, in a
    mount namespace of its own (root: ``unshare -m``; others: a user namespace, ``unshare -rm``)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare (util-linux) to mount a tiny file system")
    namespace = [unshare, "-m"] if os.geteuid() == 0 else [unshare, "-rm"]
    probe = subprocess.run(
        [*namespace, "sh", "-c", f"mount -t tmpfs -o size={size} tmpfs {mountpoint}"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tiny file system here: {probe.stderr.strip()}")
    script = f'mount -t tmpfs -o size={size} tmpfs {mountpoint} && exec "$@"'
    return [*namespace, "sh", "-c", script, "sh"]


def test_a_full_disk_is_one_line_naming_the_artifact_on_a_real_tiny_filesystem(tmp_path, org_db):
    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / "out"
    # inside the namespace: run the stage, then list what it left on the tiny disk
    stage_then_list = f'"{sys.executable}" -m dygenept "$@"; status=$?; ls -A "{out}"; exit $status'
    result = subprocess.run(
        [
            *tiny_filesystem_prefix(disk, "256k"),
            "sh",
            "-c",
            stage_then_list,
            "sh",
            *dataset_argv(out, org_db),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(WORKFLOW)},
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    [line] = error_lines(result.stderr)
    assert line.startswith(f"dygenept dataset: error: {out / 'dataset.h5ad'}: no space left")
    assert "Fix: free space" in line and "'outdir'" in line and "Traceback" not in result.stderr
    assert result.stdout.split() == []  # no partial artifact, no temporary file


def test_an_injected_enospc_is_one_line_naming_the_artifact(tmp_path, org_db, capsys, monkeypatch):
    """Where no tiny file system can be made: the same path, with the error raised by the writer."""

    def full(self, path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ad.AnnData, "write_h5ad", full)
    assert cli.main(dataset_argv(tmp_path / "out", org_db)) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(
        f"dygenept dataset: error: {tmp_path / 'out' / 'dataset.h5ad'}: no space left on the device."
    )
    assert not list((tmp_path / "out").iterdir())


# ---- folders --------------------------------------------------------------------------------------


def test_a_file_where_the_output_folder_should_be_is_named(tmp_path, org_db, capsys):
    (tmp_path / "results").write_text("not a folder")
    assert cli.main(dataset_argv(tmp_path / "results" / "demo", org_db)) == 2
    err = capsys.readouterr().err
    [line] = error_lines(err)
    assert f"{tmp_path / 'results'} is a file where a folder must be" in line
    assert "Fix: move or delete that file" in line and "Traceback" not in err


def test_a_folder_the_user_cannot_write_is_named_with_the_fix(org_db):
    """As the user ``nobody`` where the tests run as root (root writes anywhere), else as oneself."""
    base = Path(tempfile.mkdtemp(prefix="dygenept-perm-"))
    try:
        base.chmod(0o755)
        locked = base / "results"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        scratch = base / "scratch"  # numba's cache (scanpy) where the other user may write
        scratch.mkdir(mode=0o777)
        scratch.chmod(0o777)
        command = [sys.executable, "-m", "dygenept", *dataset_argv(locked / "demo", org_db)]
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("as root, needs setpriv to run the stage as another user")
            command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(WORKFLOW), "NUMBA_CACHE_DIR": str(scratch)},
            timeout=300,
            cwd=base,
        )
        assert result.returncode == 2, result.stderr[-3000:]
        [line] = error_lines(result.stderr)
        assert line.startswith(f"dygenept dataset: error: {locked / 'demo'}")
        user = "nobody" if os.geteuid() == 0 else getpass.getuser()
        assert f": permission denied for user {user}, who cannot write in {locked}. Fix" in line
        assert "Traceback" not in result.stderr
        assert list(locked.iterdir()) == []
    finally:
        shutil.rmtree(base)


# ---- optional packages ----------------------------------------------------------------------------


def test_vllm_missing_names_its_env_and_use_conda(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # what `import vllm` meets where it is absent
    local_model = {"model": str(tmp_path), "revision": "0" * 40}  # no fetch_models manifest needed
    settings = EngineSettings.from_params({**section_params("facets")["llm"], **local_model})
    with pytest.raises(SetupError) as error:
        make_engine("vllm", settings, {"type": "object"})
    message = str(error.value)
    assert message.startswith("config 'facets.backend: vllm' needs the Python package 'vllm'")
    assert "--use-conda" in message and OPTIONAL_PACKAGES["vllm"] in message


def test_scvi_missing_names_its_env_and_use_conda(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "scvi", None)
    cells_h5ad = tmp_path / "dataset.h5ad"
    obs = pd.DataFrame({"control": [True] * 4}, index=[f"c{i}" for i in range(4)])
    ad.AnnData(np.ones((4, 3), dtype=np.float32), obs=obs).write_h5ad(cells_h5ad)
    params = section_params("cells", encoder="scvi")
    with pytest.raises(SetupError) as error:
        cells.run({"h5ad": cells_h5ad}, {"embeddings": tmp_path / "cells.safetensors"}, params)
    message = str(error.value)
    assert "config 'cells.encoder: scvi' needs the Python package 'scvi'" in message
    assert "--use-conda" in message and "envs/cell_encoders.yaml" in message
    assert not (tmp_path / "cells.safetensors").exists()
