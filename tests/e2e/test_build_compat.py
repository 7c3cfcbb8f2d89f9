"""seacan build against Docker's classic builder, case by case.

Each ``tests/fixtures/build_cases/<case>/`` holds a Dockerfile, its context,
``case.json`` (the paths to compare, build args, target) and
``expected.json``, written by ``tests/fixtures/docker_oracle.py`` from a real
``DOCKER_BUILDKIT=0 docker build`` of the same context on this machine. Here
the same context (the case directory minus those two files) is built with
``seacan build`` on busybox imported under the name the oracle loaded it as
(``busybox:latest``, from the same ``docker save``-style archive), the result
is exported with ``ctr images export`` (through seacand), and its config and file tree (the
layers applied in order, whiteouts honoured) are compared with Docker's,
field by field and path by path. Like the oracle, every case is built twice;
the second build must print Docker's number of steps and serve every step
Docker served from the cache ("Using cache").

A case where Docker recorded an error must fail with seacan too and tag no
image, except ``chmod``: the classic builder refuses ``COPY --chmod`` but
BuildKit (and the issue) supports it, so there the modes it sets are checked.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im
from tests.fixtures.docker_oracle import CASES, CONFIG_FIELDS, _apply, file_tree

pytestmark = pytest.mark.e2e

CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "case.json").exists())
# Docker's image inspect shows these as "" when the image config leaves them out
STRING_FIELDS = ("WorkingDir", "User")


@pytest.fixture(scope="module")
def busybox_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compat") / "busybox.tar"
    im.write_busybox_docker(path, "busybox:latest")  # what the oracle ran `docker load` on
    return path


@pytest.fixture
def d(
    seacand_module: dm.Seacand,
    ns: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    busybox_archive: Path,
) -> Iterator[dm.Seacand]:
    seacand_module.namespace = ns
    monkeypatch.setenv("SEACAN_FIFO_DIR", str(seacand_module.base / "fifo"))
    monkeypatch.setenv("SEACAN_LOG_DIR", str(tmp_path / "logs"))
    seacand_module.seacan_ok("images", "import", busybox_archive)
    yield seacand_module
    left = seacand_module.ctr_ok("containers", "ls", "-q").split()
    for cid in left:
        seacand_module.run_seacan("rm", "-f", cid)
    seacand_module.run_seacan("builder", "prune", "-a")
    assert not left, f"the builds left containers behind: {left}"


def case_context(case: Path, dest: Path) -> Path:
    """The oracle's context: the case directory minus case.json and expected.json.

    Git keeps only 0644 and 0755, so modes the case needs are in case.json ("modes").
    """
    shutil.copytree(
        case, dest, symlinks=True, ignore=shutil.ignore_patterns("expected.json", "case.json")
    )
    for rel, mode in json.loads((case / "case.json").read_text()).get("modes", {}).items():
        (dest / rel).chmod(int(mode, 8))
    return dest


def build_argv(case: Path, tag: str) -> list[str]:
    spec = json.loads((case / "case.json").read_text())
    argv = ["build", "-t", tag]
    for k, v in spec.get("build_args", {}).items():
        argv += ["--build-arg", f"{k}={v}"]
    if spec.get("target"):
        argv += ["--target", spec["target"]]
    return argv


# --- reading the exported image ----------------------------------------------------


def _blob(outer: tarfile.TarFile, digest: str) -> bytes:
    f = outer.extractfile("blobs/" + digest.replace(":", "/"))
    assert f is not None, f"blob {digest} missing from the export"
    return f.read()


def _manifest(outer: tarfile.TarFile, desc: dict[str, Any]) -> dict[str, Any]:
    """The image manifest a descriptor leads to (an index picks the host's platform)."""
    obj: dict[str, Any] = json.loads(_blob(outer, desc["digest"]))
    if "manifests" not in obj:
        return obj
    host = im.host_platform()
    for m in obj["manifests"]:
        p = m.get("platform") or {}
        if (p.get("os", host.os), p.get("architecture", host.architecture)) == (
            host.os,
            host.architecture,
        ):
            return _manifest(outer, m)
    raise AssertionError(f"no manifest for the host's platform in {obj}")


def exported_image(archive: bytes) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """An OCI layout archive's (only) image: its config and its file tree."""
    tree: dict[str, dict[str, Any]] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as outer:
        index_file = outer.extractfile("index.json")
        assert index_file is not None, "no index.json in the export"
        index = json.loads(index_file.read())
        assert len(index["manifests"]) == 1, index
        manifest = _manifest(outer, index["manifests"][0])
        config = json.loads(_blob(outer, manifest["config"]["digest"]))
        for layer in manifest["layers"]:
            data = _blob(outer, layer["digest"])
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
                _apply(tree, tf)
    return config, tree


def inspect_view(config: dict[str, Any]) -> dict[str, Any]:
    """The config fields the oracle recorded, as ``docker image inspect`` shows them."""
    c = config.get("config") or {}
    return {k: c.get(k, "" if k in STRING_FIELDS else None) for k in CONFIG_FIELDS}


# --- comparing -----------------------------------------------------------------------


def config_diff(docker: dict[str, Any], seacan: dict[str, Any]) -> list[str]:
    return [
        f"config {k}: docker {docker.get(k)!r}, seacan {seacan.get(k)!r}"
        for k in CONFIG_FIELDS
        if docker.get(k) != seacan.get(k)
    ]


def files_diff(docker: list[dict[str, Any]], seacan: list[dict[str, Any]]) -> list[str]:
    want = {e["path"]: e for e in docker}
    got = {e["path"]: e for e in seacan}
    out = []
    for path in sorted(want.keys() | got.keys()):
        if path not in got:
            out.append(f"file {path}: missing in seacan's image (docker: {want[path]})")
        elif path not in want:
            out.append(f"file {path}: only in seacan's image ({got[path]})")
        else:
            for key in sorted(want[path].keys() | got[path].keys()):
                a, b = want[path].get(key), got[path].get(key)
                if a != b:
                    out.append(f"file {path} {key}: docker {a!r}, seacan {b!r}")
    return out


def step_counts(out: str) -> tuple[int, int]:
    """("Step N/M" lines, "Using cache" lines) of a build's output."""
    lines = out.splitlines()
    return (
        sum(1 for line in lines if line.startswith("Step ")),
        sum(1 for line in lines if "Using cache" in line),
    )


def chmod_expected(case: Path) -> dict[str, Any]:
    """What BuildKit makes of the chmod case: the copied file with the given
    modes, busybox's config untouched, and (Docker's rule for the second
    build) every step but FROM from the cache.
    """
    data = (case / "f").read_bytes()

    def copied(path: str, mode: str) -> dict[str, Any]:
        return {"path": path, "type": "file", "mode": mode, "uid": 0, "gid": 0,
                "size": len(data), "sha256": im.sha256(data).removeprefix("sha256:")}  # fmt: skip

    return {
        "config": inspect_view({"config": {"Env": [im.PATH_ENV], "Cmd": ["/bin/sh"]}}),
        "steps": 3,
        "cached_steps": 2,
        "files": [
            {"path": "/mode", "type": "dir", "mode": "0755", "uid": 0, "gid": 0},
            copied("/mode/exec", "0755"),
            copied("/mode/private", "0600"),
        ],
    }


@pytest.mark.parametrize("name", CASE_NAMES)
def test_build_matches_docker(d: dm.Seacand, tmp_path: Path, name: str) -> None:
    case = CASES / name
    expected = json.loads((case / "expected.json").read_text())
    spec = json.loads((case / "case.json").read_text())
    ctx = case_context(case, tmp_path / "ctx")
    tag = f"docker.io/library/sc-compat-{name}:latest"
    argv = [*build_argv(case, tag), str(ctx)]

    if name == "chmod":
        expected = chmod_expected(case)
    elif "error" in expected:
        r = d.run_seacan(*argv)
        assert r.returncode != 0, (
            f"docker refused this build ({expected['error']})\n" + dm.describe(r)
        )
        assert r.stderr.startswith("seacan: "), dm.describe(r)
        assert tag not in d.images(), "a failed build tagged an image"
        return

    first = d.run_seacan(*argv)
    assert first.returncode == 0, dm.describe(first)
    second = d.run_seacan(*argv)
    assert second.returncode == 0, "the second (cached) build failed\n" + dm.describe(second)

    archive = tmp_path / "image.tar"
    d.ctr_ok("images", "export", archive, tag)
    config, tree = exported_image(archive.read_bytes())
    problems = config_diff(expected["config"], inspect_view(config))
    problems += files_diff(expected["files"], file_tree(tree, spec["paths"]))
    steps, cached = step_counts(second.stdout)
    if cached != expected["cached_steps"]:
        problems.append(
            f"second build: docker took {expected['cached_steps']} steps from the cache,"
            f" seacan {cached}"
        )
    if steps != expected["steps"]:
        problems.append(f"second build: docker printed {expected['steps']} steps, seacan {steps}")
    assert not problems, (
        f"{name}: seacan's build differs from Docker's:\n"
        + "\n".join(problems)
        + "\n--- second build\n"
        + second.stdout
    )
