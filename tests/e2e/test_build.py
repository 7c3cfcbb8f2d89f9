"""seacan build / commit / history / builder prune against a private seacand, with busybox.

Each test builds in its own namespace on one daemon for the module (the
restart and context-limit tests run their own daemons). What is checked is
what a user sees: the build output, the files and config of the image, what
``seacan run`` of the result prints, exit codes and error lines, and that no
image is tagged when a build fails.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e


@pytest.fixture
def d(
    seacand_module: dm.Seacand, ns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dm.Seacand]:
    seacand_module.namespace = ns
    monkeypatch.setenv("SEACAN_FIFO_DIR", str(seacand_module.base / "fifo"))
    monkeypatch.setenv("SEACAN_LOG_DIR", str(tmp_path / "logs"))
    archive = tmp_path / "busybox.tar"
    im.write_busybox_oci(archive)
    seacand_module.seacan_ok("images", "import", archive)
    yield seacand_module
    for cid in seacand_module.seacan_ok("ps", "-a", "-q").split():
        seacand_module.run_seacan("rm", "-f", cid)
    seacand_module.run_seacan("builder", "prune", "-a")


def context(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def build(d: dm.Seacand, ctx: Path, *args: str) -> str:
    return d.seacan_ok("build", "--progress", "plain", *args, ctx)


def cached_steps(out: str) -> list[int]:
    """Numbers of the steps the cache served."""
    steps, cur = [], 0
    for line in out.splitlines():
        m = re.match(r"Step (\d+)/\d+ : ", line)
        if m:
            cur = int(m.group(1))
        elif line.strip() == "---> Using cache":
            steps.append(cur)
    return steps


def image_config(d: dm.Seacand, ref: str) -> dict[str, object]:
    manifest = json.loads(d.ctr_ok("content", "get", d.images()[ref]["DIGEST"]))
    cfg: dict[str, object] = json.loads(d.ctr_ok("content", "get", manifest["config"]["digest"]))
    return cfg


def run(d: dm.Seacand, ref: str, *cmd: str) -> str:
    return d.seacan_ok("run", "--rm", ref, *cmd)


def fails(d: dm.Seacand, *args: str | Path) -> str:
    r = d.run_seacan(*args)
    assert r.returncode == 1, dm.describe(r)
    return r.stderr


APP = """FROM busybox
ARG GREETING=hello
ENV APP_HOME=/app
WORKDIR $APP_HOME
COPY main.sh data/ ./
RUN echo "$GREETING from RUN" > made.txt && chmod +x main.sh && echo run-output-line
CMD ["./main.sh"]
"""


def test_build_run_and_layer_cache(d: dm.Seacand, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {
        "Dockerfile": APP,
        "main.sh": "#!/bin/sh\ncat made.txt data.txt\n",
        "data/data.txt": "data v1\n",
    })  # fmt: skip
    out = build(d, ctx, "-t", "app:1")
    assert "Step 6/7 : RUN" in out and "run-output-line" in out, out
    assert re.search(r" ---> Running in [0-9a-f]{12}", out), out
    assert re.search(r"Successfully built [0-9a-f]{12}\nSuccessfully tagged app:1\n", out), out
    assert cached_steps(out) == []
    assert run(d, "app:1") == "hello from RUN\ndata v1\n"

    again = build(d, ctx, "-t", "app:1")
    assert cached_steps(again) == [2, 3, 4, 5, 6, 7], again
    built = re.findall(r"Successfully built (\w+)", out)
    assert re.findall(r"Successfully built (\w+)", again) == built

    os.utime(ctx / "data" / "data.txt", (1, 1))  # mtime alone: still cached
    assert cached_steps(build(d, ctx, "-t", "app:1")) == [2, 3, 4, 5, 6, 7]

    (ctx / "data" / "data.txt").write_text("data v2\n")  # one byte: from COPY on
    changed = build(d, ctx, "-t", "app:1")
    assert cached_steps(changed) == [2, 3, 4], changed
    assert run(d, "app:1") == "hello from RUN\ndata v2\n"

    changed = build(d, ctx, "-t", "app:2", "--build-arg", "GREETING=hi")
    assert cached_steps(changed) == [2, 3, 4, 5], changed  # RUN sees the new ARG
    assert run(d, "app:2") == "hi from RUN\ndata v2\n"

    assert cached_steps(build(d, ctx, "-t", "app:1", "--no-cache")) == []

    hist = d.seacan_ok("history", "--no-trunc", "app:1")
    assert "|1 GREETING=hello /bin/sh -c echo" in hist, hist
    assert "WORKDIR /app" in hist and 'CMD ["./main.sh"]' in hist, hist
    cfg = image_config(d, "docker.io/library/app:1")
    assert len(cfg["history"]) == len(cfg["rootfs"]["diff_ids"]) + sum(  # type: ignore[index,arg-type]
        1
        for h in cfg["history"]
        if h.get("empty_layer")  # type: ignore[attr-defined,union-attr]
    )


METADATA = """FROM busybox
LABEL org.example.name="my app" version=1
ENV A=1 B="two words"
EXPOSE 80 53/udp
VOLUME ["/data"]
USER nobody
WORKDIR /srv/www
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD wget -q -O- http://localhost/ || exit 1
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/bin/echo"]
CMD ["hello", "$A"]
ONBUILD USER root
ONBUILD RUN echo triggered > /trigger.txt
"""


def test_metadata_instructions_land_in_config(d: dm.Seacand, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {"Dockerfile": METADATA})
    build(d, ctx, "-t", "meta", "--label", "extra=yes")
    c = image_config(d, "docker.io/library/meta:latest")["config"]
    assert isinstance(c, dict)
    assert c["Labels"] == {"org.example.name": "my app", "version": "1", "extra": "yes"}
    assert "A=1" in c["Env"] and "B=two words" in c["Env"]
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["Volumes"] == {"/data": {}}
    assert c["User"] == "nobody"
    assert c["WorkingDir"] == "/srv/www"
    assert c["StopSignal"] == "SIGINT"
    assert c["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"],
        "Interval": 5_000_000_000,
        "Retries": 2,
    }
    assert c["Shell"] == ["/bin/sh", "-ec"]
    assert c["Entrypoint"] == ["/bin/echo"] and c["Cmd"] == ["hello", "$A"]
    assert c["OnBuild"] == ["USER root", "RUN echo triggered > /trigger.txt"]
    assert run(d, "meta") == "hello $A\n"

    child = context(tmp_path / "child", {"Dockerfile": "FROM meta\nENV C=1\n"})
    out = build(d, child, "-t", "child")
    assert "# Executing 2 build triggers" in out, out
    assert d.seacan_ok("run", "--rm", "--entrypoint", "cat", "child", "/trigger.txt") == (
        "triggered\n"
    )
    assert image_config(d, "docker.io/library/child:latest")["config"]["OnBuild"] is None  # type: ignore[index]


MULTI = """FROM busybox AS builder
RUN mkdir /out && echo compiled > /out/app.bin
FROM busybox AS unused
RUN exit 7
FROM busybox AS final
COPY --from=builder /out/app.bin /usr/local/bin/
COPY --from=0 /out /copied-dir
RUN cat /usr/local/bin/app.bin /copied-dir/app.bin
"""


def test_multistage_target_and_copy_from(d: dm.Seacand, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {"Dockerfile": MULTI})
    out = build(d, ctx, "-t", "multi")
    assert "exit 7" not in out  # the unused stage is skipped
    assert run(d, "multi", "cat", "/usr/local/bin/app.bin", "/copied-dir/app.bin") == (
        "compiled\ncompiled\n"
    )
    build(d, ctx, "-t", "stage1", "--target", "builder")
    assert run(d, "stage1", "cat", "/out/app.bin") == "compiled\n"
    r = d.run_seacan("run", "--rm", "stage1", "ls", "/usr/local/bin/app.bin")
    assert r.returncode != 0


def test_dockerignore(d: dm.Seacand, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
        ".dockerignore": "*.secret\nlogs\n!logs/keep.log\n**/tmp-*\n",
        "a.txt": "a", "b.secret": "no", "logs/drop.log": "no", "logs/keep.log": "yes",
        "sub/tmp-x": "no", "sub/y": "y",
    })  # fmt: skip
    build(d, ctx, "-t", "ign")
    listing = run(d, "ign", "find", "/ctx", "-type", "f").split()
    assert sorted(listing) == [
        "/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/a.txt", "/ctx/logs/keep.log", "/ctx/sub/y",
    ]  # fmt: skip


def test_add_archive_chown_chmod_heredoc(d: dm.Seacand, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"inside the archive\n"
        ti = tarfile.TarInfo("pkg/readme.txt")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    ctx = context(tmp_path / "ctx", {
        "Dockerfile": (
            "FROM busybox\n"
            "ADD pkg.tar.gz /opt/\n"
            "COPY --chown=nobody:nobody --chmod=640 f.txt /home/f.txt\n"
            "COPY --chown=65534 f.txt /home/g.txt\n"
            "RUN <<EOF\necho from heredoc > /hd.txt\nEOF\n"
        ),
        "pkg.tar.gz": buf.getvalue(),
        "f.txt": "f\n",
    })  # fmt: skip
    build(d, ctx, "-t", "addimg")
    assert run(d, "addimg", "cat", "/opt/pkg/readme.txt", "/hd.txt") == (
        "inside the archive\nfrom heredoc\n"
    )
    assert run(d, "addimg", "stat", "-c", "%u:%g %a", "/home/f.txt", "/home/g.txt") == (
        "65534:65534 640\n65534:65534 644\n"
    )


def test_source_date_epoch_reproducible(
    d: dm.Seacand, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = context(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nCOPY f.txt /f.txt\nRUN echo x > /x.txt\nCMD [\"cat\"]\n",
        "f.txt": "f\n",
    })  # fmt: skip
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = d.seacan_ok("build", "-q", "--no-cache", "-t", "r1", ctx).strip()
    b = d.seacan_ok("build", "-q", "--no-cache", "-t", "r2", ctx).strip()
    assert a == b and a.startswith("sha256:")
    assert (
        d.images()["docker.io/library/r1:latest"]["DIGEST"]
        == (d.images()["docker.io/library/r2:latest"]["DIGEST"])
    )


BAD = {
    "syntax": ("FROM busybox\nRUN echo ok\nCOPY\n", "Dockerfile:3"),
    "unknown": ("FROM busybox\nFROBNICATE x\n", "unknown instruction"),
    "parent": ("FROM busybox\nCOPY ../outside.txt /x\n", "outside the build context"),
    "symlink": ("FROM busybox\nCOPY link /x\n", "outside the build context"),
    "stage": ("FROM busybox AS a\nRUN true\n", "build stage 'nope' not found"),
    "run": ("FROM busybox\nRUN echo doomed-output; exit 3\n", "returned a non-zero code: 3"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_a_clear_error_and_tags_nothing(
    d: dm.Seacand, tmp_path: Path, case: str
) -> None:
    dockerfile, expected = BAD[case]
    (tmp_path / "outside.txt").write_text("secret")
    ctx = context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    (ctx / "link").symlink_to("/etc/passwd")
    extra = ["--target", "nope"] if case == "stage" else []
    err = fails(d, "build", "-t", "bad:1", *extra, ctx)
    assert expected in err, err
    assert err.startswith("seacan: ") and err.count("seacan:") == 1, err
    if case == "run":
        assert "doomed-output" in err, err
    assert "docker.io/library/bad:1" not in d.images()


def test_commit_with_change_and_history(d: dm.Seacand) -> None:
    d.seacan_ok("run", "-d", "--name", "cm", "busybox", "sh", "-c",
                "echo committed > /state.txt; sleep 60")  # fmt: skip
    for _ in range(50):
        r = d.run_seacan("exec", "cm", "cat", "/state.txt")
        if r.returncode == 0:
            break
    image_id = d.seacan_ok(
        "commit", "--change", 'CMD ["cat", "/state.txt"]', "--change", "ENV MODE=committed",
        "-m", "snapshot it", "-a", "tester", "cm", "snap:1",
    ).strip()  # fmt: skip
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    d.seacan_ok("rm", "-f", "cm")
    assert run(d, "snap:1") == "committed\n"
    assert run(d, "snap:1", "sh", "-c", "echo $MODE") == "committed\n"
    hist = d.seacan_ok("history", "snap:1")
    rows = dm.table(hist)
    assert rows[0]["IMAGE"] == image_id[7:19] and "snapshot it" in hist, hist
    assert fails(d, "commit", "--change", "RUN echo no", "nosuch")


def test_context_over_the_limit(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    d = dm.Seacand(request.node.nodeid + "limit", extra_args=("--max-context-bytes", "20000"))
    with d.running():
        archive = tmp_path / "busybox.tar"
        im.write_busybox_oci(archive)
        d.seacan_ok("images", "import", archive)
        ctx = context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\n", "big": os.urandom(50000)})
        err = fails(d, "build", "-t", "big:1", ctx)
        assert "larger than the limit of 20000 bytes" in err, err
        assert "docker.io/library/big:1" not in d.images()
        (ctx / "big").unlink()
        d.seacan_ok("build", "-t", "small:1", ctx)


def test_cache_survives_restart_and_prune(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = dm.Seacand(request.node.nodeid)
    monkeypatch.setenv("SEACAN_FIFO_DIR", str(d.base / "fifo"))
    with d.running():
        archive = tmp_path / "busybox.tar"
        im.write_busybox_oci(archive)
        d.seacan_ok("images", "import", archive)
        ctx = context(tmp_path / "ctx", {"Dockerfile": APP.replace("data/ ", "d.txt "),
                                         "main.sh": "x", "d.txt": "d"})  # fmt: skip
        build(d, ctx, "-t", "app:1")
        d.stop()
        d.start()
        assert cached_steps(build(d, ctx, "-t", "app:1")) == [2, 3, 4, 5, 6, 7]
        assert "Deleted 0 build cache entries" in d.seacan_ok("builder", "prune")
        out = d.seacan_ok("builder", "prune", "-a")
        assert re.search(r"Deleted [1-9]\d* build cache entries", out), out
        d.seacan_ok("prune")  # GC may now collect what only the cache held
        assert cached_steps(build(d, ctx, "-t", "app:1")) == []
