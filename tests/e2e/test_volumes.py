"""Volumes, binds and tmpfs mounts through ``seacan run`` and ``seacan volume``, with busybox.

Tests share the module's seacand, each in its own namespace (``cli``);
those that restart or kill it have their own (``own``). After each test its
containers and volumes are removed, and nothing may stay mounted under the
volume root; the daemon fixtures unmount anything left under their
directory. Host directories for binds are the test's ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e

HOSTILE = "docker.io/library/hostile:latest"
# No network: these tests are about storage only.
RUN = ("run", "--network", "none")


def _hostile_image() -> im.Image:
    """busybox plus hostile symlinks, odd modes, and ``VOLUME /anon``."""
    entries = [
        *im.busybox_entries(),
        im.directory("data", 0o750),
        im.file("data/secret", b"only root\n", 0o600),
        im.file("data/run.sh", b"#!/bin/sh\n", 0o755),
        im.symlink("data/passwd-link", "/etc/passwd"),
        im.symlink("data/escape", "../../../../../../../../etc"),
        im.hardlink("data/secret-again", "data/secret"),
        im.symlink("link-to-etc", "/../../../../../../etc"),
        im.directory("anon"),
        im.file("anon/seed", b"from the image\n"),
    ]
    base = im.make_image([im.make_layer(sorted(entries, key=lambda e: e.name))])
    config = json.loads(base.config.data)
    config["config"]["Volumes"] = {"/anon": {}}
    cblob = im.Blob.of(base.config.media_type, im.canonical_json(config))
    manifest = json.loads(base.manifest.data)
    manifest["config"] = cblob.descriptor()
    mblob = im.Blob.of(base.manifest.media_type, im.canonical_json(manifest))
    return im.Image(base.platform, cblob, base.layers, mblob)


def _using(
    d: dm.Seacand, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ns: str
) -> Iterator[dm.Seacand]:
    d.namespace = ns
    monkeypatch.setenv("SEACAN_FIFO_DIR", str(d.base / "fifo"))
    monkeypatch.setenv("SEACAN_LOG_DIR", str(tmp_path / "logs"))
    im.write_busybox_oci(tmp_path / "busybox.tar")
    d.seacan_ok("images", "import", tmp_path / "busybox.tar")
    yield d
    if d.proc is not None and d.proc.poll() is None:
        for cid in d.seacan_ok("ps", "-a", "-q").split():
            d.run_seacan("rm", "-f", cid)
        d.seacan_ok("volume", "prune", "-f", "-a")  # unmounts volumes with mount options
        assert not dm.mounts_under([d.root / "volumes"]), "volume mounts left behind"


@pytest.fixture
def cli(
    seacand_module: dm.Seacand, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ns: str
) -> Iterator[dm.Seacand]:
    """The module's seacand, in this test's own namespace."""
    yield from _using(seacand_module, tmp_path, monkeypatch, ns)


@pytest.fixture
def own(
    seacand: dm.Seacand, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ns: str
) -> Iterator[dm.Seacand]:
    """A seacand of this test's own (it is restarted or killed)."""
    yield from _using(seacand, tmp_path, monkeypatch, ns)


def run(d: dm.Seacand, *args: str) -> str:
    return d.seacan_ok(*RUN, "--rm", *args)


def fails(d: dm.Seacand, *args: str) -> str:
    """A command that must fail with exit status 1; its stderr."""
    r = d.run_seacan(*args)
    assert r.returncode == 1, dm.describe(r)
    assert r.stderr.startswith("seacan: "), dm.describe(r)
    return r.stderr


def inspect(d: dm.Seacand, name: str) -> dict[str, Any]:
    out: list[dict[str, Any]] = json.loads(d.seacan_ok("volume", "inspect", name))
    return out[0]


def names(d: dm.Seacand) -> list[str]:
    return d.seacan_ok("volume", "ls", "-q").split()


def test_data_outlives_container_and_restart(own: dm.Seacand) -> None:
    cli = own
    assert cli.seacan_ok("volume", "create", "--label", "app=web", "data") == "data\n"
    run(cli, "-v", "data:/data", "busybox", "sh", "-c", "echo 'hello vol' > /data/f")
    assert cli.seacan_ok("ps", "-a", "-q") == ""
    v = inspect(cli, "data")
    assert v["Labels"] == {"app": "web"} and v["Driver"] == "local"
    assert Path(v["Mountpoint"], "f").read_bytes() == b"hello vol\n"
    cli.stop()
    cli.start()
    assert run(cli, "-v", "data:/data", "busybox", "cat", "/data/f") == "hello vol\n"
    lines = cli.seacan_ok("volume", "ls").splitlines()
    assert [ln.split() for ln in lines] == [["DRIVER", "VOLUME", "NAME"], ["local", "data"]]
    assert cli.seacan_ok("volume", "ls", "-q", "--filter", "label=app=web") == "data\n"
    assert cli.seacan_ok("volume", "ls", "-q", "--filter", "label=app=db") == ""


def test_named_volume_made_on_first_use(cli: dm.Seacand) -> None:
    run(cli, "--mount", "type=volume,src=auto,dst=/d", "busybox", "sh", "-c", "echo x > /d/x")
    assert names(cli) == ["auto"]
    assert run(cli, "-v", "auto:/d", "busybox", "cat", "/d/x") == "x\n"


def test_readonly_volume_refuses_writes(cli: dm.Seacand) -> None:
    run(cli, "-v", "data:/data", "busybox", "sh", "-c", "echo one > /data/f")
    for flag in (["-v", "data:/data:ro"], ["--mount", "source=data,target=/data,readonly"]):
        r = cli.run_seacan(*RUN, "--rm", *flag, "busybox", "sh", "-c", "echo two > /data/f")
        assert r.returncode != 0, dm.describe(r)
        assert "Read-only file system" in r.stderr, dm.describe(r)
        assert run(cli, *flag, "busybox", "cat", "/data/f") == "one\n"


def test_host_bind_mounts_rw_and_ro(cli: dm.Seacand, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "in").write_text("from host\n")
    out = run(cli, "-v", f"{host}:/h", "busybox", "sh", "-c", "cat /h/in; echo back > /h/out")
    assert out == "from host\n"
    assert (host / "out").read_text() == "back\n"
    for flag in (
        ["-v", f"{host}:/h:ro"],
        ["--mount", f"type=bind,source={host},target=/h,readonly"],
    ):
        r = cli.run_seacan(*RUN, "--rm", *flag, "busybox", "sh", "-c", "echo x > /h/new")
        assert r.returncode != 0 and "Read-only file system" in r.stderr, dm.describe(r)
        assert not (host / "new").exists()
    assert names(cli) == []  # binds make no volumes


def test_bind_of_missing_path_is_a_clear_error(cli: dm.Seacand, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    for flag in (["-v", f"{missing}:/x"], ["--mount", f"type=bind,src={missing},dst=/x"]):
        err = fails(cli, *RUN, "--rm", *flag, "busybox", "true")
        assert f"bind source path '{missing}' does not exist" in err
    assert not missing.exists()
    assert cli.seacan_ok("ps", "-a", "-q") == ""
    assert names(cli) == []


def test_bad_volume_names_refused(cli: dm.Seacand) -> None:
    for name in ("a/b", "..", "../x", "/abs", "x", ".hidden", "a b", "../../../etc"):
        err = fails(cli, "volume", "create", name)
        assert f"invalid volume name {name!r}" in err, err
    assert names(cli) == []
    assert not list((cli.root / "volumes" / "data" / cli.namespace).glob("*"))


MALFORMED = [
    (["-v", "../x:/y"], "invalid volume name '../x'"),
    (["-v", "a/b:/y"], "invalid volume name 'a/b'"),
    (["-v", "data:rel"], "must be absolute"),
    (["-v", "data:/y:rx"], "invalid mode 'rx'"),
    (["-v", "data:/"], "cannot be '/'"),
    (["--mount", "type=nfs,target=/y"], "type 'nfs'"),
    (["--mount", "type=volume,target=/y,colour=red"], "unexpected key 'colour'"),
    (["--mount", "type=bind,target=/y"], "needs a source"),
    (["--mount", "type=tmpfs,src=x,target=/y"], "takes no source"),
    (["--mount", "type=bind,src=/tmp,dst=/y,volume-nocopy"], "do not apply to type bind"),
    (["--mount", "type=volume,src=v1"], "target (container path) is missing"),
    (["-v", "a1:/y", "-v", "a2:/y"], "duplicate mount point: /y"),
    (["--tmpfs", "/t:size=1m;rm"], "invalid option"),
]


def test_malformed_flags_create_nothing(cli: dm.Seacand) -> None:
    for flag, message in MALFORMED:
        err = fails(cli, *RUN, "--rm", *flag, "busybox", "true")
        assert message in err, err
    assert cli.seacan_ok("ps", "-a", "-q") == ""
    assert names(cli) == []


def test_copy_up_fills_an_empty_volume_once(cli: dm.Seacand) -> None:
    out = run(cli, "-v", "etc:/etc", "busybox", "cat", "/etc/passwd")
    assert out.encode() == im.PASSWD
    mp = Path(inspect(cli, "etc")["Mountpoint"])
    assert sorted(p.name for p in mp.iterdir()) == ["group", "passwd"]
    assert (mp / "group").read_bytes() == im.GROUP
    # Not empty any more: a later use keeps what is there.
    run(cli, "-v", "etc:/etc", "busybox", "sh", "-c", "echo changed > /etc/passwd")
    assert run(cli, "-v", "etc:/etc", "busybox", "cat", "/etc/passwd") == "changed\n"
    # nocopy: the volume stays empty.
    assert run(cli, "-v", "empty:/etc:nocopy", "busybox", "ls", "-A", "/etc") == ""


def test_copy_up_preserves_and_never_follows(cli: dm.Seacand, tmp_path: Path) -> None:
    im.write_oci(tmp_path / "hostile.tar", _hostile_image(), HOSTILE)
    cli.seacan_ok("images", "import", tmp_path / "hostile.tar")
    run(cli, "-v", "dd:/data", "hostile", "true")
    mp = Path(inspect(cli, "dd")["Mountpoint"])
    assert stat.S_IMODE(mp.stat().st_mode) == 0o750  # the directory's own mode, as Docker
    assert stat.S_IMODE((mp / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((mp / "run.sh").stat().st_mode) == 0o755
    assert os.readlink(mp / "passwd-link") == "/etc/passwd"
    assert os.readlink(mp / "escape") == "../../../../../../../../etc"
    assert (mp / "secret").stat().st_ino == (mp / "secret-again").stat().st_ino
    # A mount path that is a symlink out of the rootfs resolves inside it (the image's /etc).
    run(cli, "-v", "ee:/link-to-etc", "hostile", "true")
    mp_e = Path(inspect(cli, "ee")["Mountpoint"])
    assert (mp_e / "passwd").read_bytes() == im.PASSWD
    assert sorted(p.name for p in mp_e.iterdir()) == ["group", "passwd"]


def test_image_volume_is_anonymous_and_removed_with_rm(cli: dm.Seacand, tmp_path: Path) -> None:
    im.write_oci(tmp_path / "hostile.tar", _hostile_image(), HOSTILE)
    cli.seacan_ok("images", "import", tmp_path / "hostile.tar")
    assert run(cli, "hostile", "cat", "/anon/seed") == "from the image\n"
    assert names(cli) == []  # --rm took the image's anonymous volume with it
    cli.seacan_ok(*RUN, "--name", "keep", "hostile", "true")
    (anon,) = names(cli)
    v = inspect(cli, anon)
    assert len(anon) == 64 and "com.docker.volume.anonymous" in v["Labels"]
    assert v["UsedBy"] == ["keep"]
    cli.seacan_ok("rm", "-v", "keep")
    assert names(cli) == []


def test_rm_keeps_anonymous_volumes_without_v(cli: dm.Seacand) -> None:
    run(cli, "-v", "/scratch", "busybox", "touch", "/scratch/x")
    assert names(cli) == []
    cli.seacan_ok(*RUN, "--name", "c1", "-v", "/scratch", "busybox", "touch", "/scratch/x")
    (anon,) = names(cli)
    cli.seacan_ok("rm", "c1")
    assert names(cli) == [anon]
    assert inspect(cli, anon)["UsedBy"] == []


def test_rm_of_volume_in_use_refused(cli: dm.Seacand) -> None:
    cli.seacan_ok(*RUN, "-d", "--name", "web", "-v", "data:/data", "busybox", "sleep", "600")
    cli.seacan_ok(*RUN, "--name", "done", "-v", "data:/data", "busybox", "true")
    err = fails(cli, "volume", "rm", "data")
    assert 'volume "data" is in use by container(s) done, web' in err
    assert fails(cli, "volume", "rm", "-f", "data")  # -f does not override "in use"
    cli.seacan_ok("rm", "-f", "web", "done")
    assert cli.seacan_ok("volume", "rm", "data") == "data\n"
    assert names(cli) == []
    assert "no such volume" in fails(cli, "volume", "rm", "data")
    assert cli.seacan_ok("volume", "rm", "-f", "data") == "data\n"


def test_prune_removes_only_unused(cli: dm.Seacand) -> None:
    cli.seacan_ok("volume", "create", "named")
    cli.seacan_ok("volume", "create", "--label", "keep=1", "labelled")
    cli.seacan_ok(*RUN, "--name", "c1", "-v", "/anon1", "-v", "used:/u", "busybox", "true")
    cli.seacan_ok(*RUN, "--name", "c2", "-v", "/anon2", "busybox", "true")
    cli.seacan_ok("rm", "c2")
    (anon2,) = set(names(cli)) - {"named", "labelled", "used"} - set(inspect_used(cli, "c1"))
    out = cli.seacan_ok("volume", "prune", "-f")
    assert out.startswith(f"Deleted Volumes:\n{anon2}\n\nTotal reclaimed space: "), out
    assert sorted(names(cli)) == sorted(["named", "labelled", "used", *inspect_used(cli, "c1")])
    out = cli.seacan_ok("volume", "prune", "-f", "-a", "--filter", "label=keep")
    assert out.startswith("Deleted Volumes:\nlabelled\n"), out
    cli.seacan_ok("volume", "prune", "-f", "--all")
    assert sorted(names(cli)) == sorted(["used", *inspect_used(cli, "c1")])
    cli.seacan_ok("rm", "c1")
    cli.seacan_ok("volume", "prune", "-f", "-a")
    assert names(cli) == []


def inspect_used(d: dm.Seacand, cid: str) -> list[str]:
    """The anonymous volumes container ``cid`` uses."""
    rows = json.loads(d.seacan_ok("volume", "ls", "--format", "json"))
    return [v["Name"] for v in rows if cid in v["UsedBy"] and len(v["Name"]) == 64]


def test_tmpfs_mounts(cli: dm.Seacand) -> None:
    t2 = "type=tmpfs,target=/t2,tmpfs-size=2m,tmpfs-mode=1770"
    script = "grep -E ' /t[12] ' /proc/mounts; stat -c %a /t2; echo x > /t1/f"
    out = run(cli, "--tmpfs", "/t1:size=1m", "--mount", t2, "busybox", "sh", "-c", script)
    t2_line, t1_line, mode = out.splitlines()  # mounts in flag order: -v, --mount, --tmpfs
    assert t2_line.startswith("tmpfs /t2 tmpfs rw,nosuid,nodev,noexec") and "size=2048k" in t2_line
    assert t1_line.startswith("tmpfs /t1 tmpfs rw,nosuid,nodev,noexec") and "size=1024k" in t1_line
    assert mode == "1770"
    assert names(cli) == []


def test_volume_with_tmpfs_options_mounted_while_used(cli: dm.Seacand) -> None:
    cli.seacan_ok(
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=1m",
        "tv",
    )
    mp = Path(inspect(cli, "tv")["Mountpoint"])
    assert not dm.is_mountpoint(mp)
    cli.seacan_ok(*RUN, "-d", "--name", "user", "-v", "tv:/t", "busybox", "sleep", "600")
    assert dm.is_mountpoint(mp)
    out = cli.seacan_ok("exec", "user", "sh", "-c", "echo in-ram > /t/f; df -k /t | tail -1")
    assert out.split()[1] == "1024", out
    assert (mp / "f").read_text() == "in-ram\n"
    cli.seacan_ok("rm", "-f", "user")
    deadline = time.monotonic() + 10
    while dm.is_mountpoint(mp) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not dm.is_mountpoint(mp), "unmounted once no container uses it"
    assert inspect(cli, "tv")["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}


def test_volume_survives_kill9_of_service_and_seacand(own: dm.Seacand) -> None:
    cli = own
    run(cli, "-v", "data:/data", "busybox", "sh", "-c", "echo durable > /data/f")
    old = cli.services()["volumes"]
    os.kill(old, 9)
    cli.wait_service("volumes", not_pid=old)
    assert run(cli, "-v", "data:/data", "busybox", "cat", "/data/f") == "durable\n"
    cli.seacan_ok(*RUN, "--name", "holder", "-v", "data:/data", "busybox", "true")
    cli.kill9()
    dm.wait_gone(cli.descendants() or {}, 10)
    time.sleep(0.5)  # services die with seacand (PR_SET_PDEATHSIG)
    cli.start()
    assert run(cli, "-v", "data:/data", "busybox", "cat", "/data/f") == "durable\n"
    assert "in use by container(s) holder" in fails(cli, "volume", "rm", "data")
    cli.seacan_ok("rm", "holder")
    cli.seacan_ok("volume", "rm", "data")


def test_refs_of_containers_deleted_while_service_down_are_dropped(own: dm.Seacand) -> None:
    cli = own
    cli.seacan_ok(*RUN, "--name", "gone", "-v", "data:/data", "busybox", "true")
    old = cli.services()["volumes"]
    os.kill(old, 19)  # SIGSTOP: the delete event goes unheard
    try:
        cli.seacan_ok("containers", "rm", "gone")
    finally:
        os.kill(old, 9)  # a stopped process dies of SIGKILL too; seacand reaps it at once
    cli.wait_service("volumes", not_pid=old)
    deadline = time.monotonic() + 10
    while inspect(cli, "data")["UsedBy"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cli.seacan_ok("volume", "rm", "data") == "data\n"
