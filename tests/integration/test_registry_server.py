"""seacan's registry server over raw HTTP: the OCI Distribution spec v1.1, bad
input, crash safety, gc, basic and token auth, TLS.

Every server is a real process (``seacan registry serve`` on a free loopback
port, private root under tmp_path), stopped by its PID.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.integration

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- a server process -----------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    root: Path
    log: Path
    access: Path

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=20)


def start(root: Path, *extra: str, cli: bool = False) -> Server:
    root.mkdir(parents=True, exist_ok=True)
    log = root.parent / f"{root.name}.stderr"
    access = root.parent / f"{root.name}.access"
    args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--root",
        str(root / "data"),
        "--access-log",
        str(access),
        *extra,
    ]
    if cli:
        argv = [sys.executable, "-m", "seacan.cli.main", "registry", *args]
    else:
        argv = [sys.executable, "-m", "seacan.services.registry", *args]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stderr=err, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("listening on "):
                url = line.removeprefix("listening on ").strip()
                return Server(proc, url, root / "data", log, access)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError(f"registry did not start: {log.read_text()}")


@contextlib.contextmanager
def running(root: Path, *extra: str, cli: bool = False) -> Iterator[Server]:
    s = start(root, *extra, cli=cli)
    try:
        yield s
    finally:
        s.kill()


# --- raw HTTP -------------------------------------------------------------------


@dataclass
class Resp:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str:
        return str(self.json()["errors"][0]["code"])


def _conn(s: Server, ctx: ssl.SSLContext | None = None) -> http.client.HTTPConnection:
    if s.url.startswith("https"):
        return http.client.HTTPSConnection(s.host, timeout=30, context=ctx)
    return http.client.HTTPConnection(s.host, timeout=30)


def req(
    s: Server,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    ctx: ssl.SSLContext | None = None,
) -> Resp:
    c = _conn(s, ctx)
    try:
        c.putrequest(method, path, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None or method in ("PUT", "POST", "PATCH"):
            hdrs.setdefault("Content-Length", str(len(body or b"")))
        for k, v in hdrs.items():
            c.putheader(k, v)
        c.endheaders()
        if body:
            c.send(body)
        r = c.getresponse()
        return Resp(r.status, r.headers, r.read())
    finally:
        c.close()


def push_blob(s: Server, name: str, data: bytes, **kw: Any) -> str:
    d = digest(data)
    r = req(s, "POST", f"/v2/{name}/blobs/uploads/?digest={d}", data, **kw)
    assert r.status == 201, r.body
    return d


def image(s: Server, name: str, tag: str, seed: bytes, **kw: Any) -> tuple[str, list[str]]:
    """Push a one-layer image; its manifest digest and blob digests."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed.hex()}).encode()
    layer = b"layer-" + seed
    cd, ld = push_blob(s, name, config, **kw), push_blob(s, name, layer, **kw)
    m = manifest_bytes(cd, len(config), [(ld, len(layer))])
    headers = {**kw.pop("headers", {}), "Content-Type": OCI_MANIFEST}
    r = req(s, "PUT", f"/v2/{name}/manifests/{tag}", m, headers, **kw)
    assert r.status == 201, r.body
    return digest(m), [cd, ld]


def manifest_bytes(
    cd: str, csize: int, layers: list[tuple[str, int]], media_type: str = OCI_MANIFEST, **extra: Any
) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": CONFIG, "digest": cd, "size": csize},
        "layers": [{"mediaType": LAYER, "digest": d, "size": n} for d, n in layers],
        **extra,
    }
    return json.dumps(doc).encode()


def blob_files(s: Server) -> set[str]:
    return {"sha256:" + p.name for p in (s.root / "blobs" / "sha256").iterdir()}


# --- the shared server ----------------------------------------------------------


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the conformance tests; each test uses its own repositories."""
    root = tmp_path_factory.mktemp("reg")
    s = start(root, "--max-manifest-bytes", "65536", cli=True)
    try:
        yield s
        assert s.stop() == 0  # through the CLI's exec: SIGTERM reaches the server
    finally:
        s.kill()


def test_base_and_headers(reg: Server) -> None:
    r = req(reg, "GET", "/v2/")
    assert r.status == 200 and r.json() == {}
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert req(reg, "GET", "/v2/nothing/here").status == 404


def test_monolithic_push_and_ranged_pull(reg: Server) -> None:
    data = os.urandom(3 << 20)
    d = digest(data)
    r = req(reg, "POST", f"/v2/mono/blobs/uploads/?digest={d}", data)
    assert r.status == 201
    assert r.headers["Location"] == f"/v2/mono/blobs/{d}"
    assert r.headers["Docker-Content-Digest"] == d
    h = req(reg, "HEAD", f"/v2/mono/blobs/{d}")
    assert h.status == 200 and h.headers["Content-Length"] == str(len(data)) and h.body == b""
    assert h.headers["Docker-Content-Digest"] == d
    g = req(reg, "GET", f"/v2/mono/blobs/{d}")
    assert g.status == 200 and g.body == data
    part = req(reg, "GET", f"/v2/mono/blobs/{d}", headers={"Range": "bytes=100-1099"})
    assert part.status == 206 and part.body == data[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{len(data)}"
    bad = req(reg, "GET", f"/v2/mono/blobs/{d}", headers={"Range": f"bytes={len(data) + 5}-"})
    assert bad.status == 416
    # the same blob is unknown to another repository until mounted or pushed
    other = req(reg, "HEAD", f"/v2/mono2/blobs/{d}")
    assert other.status == 404
    assert req(reg, "GET", f"/v2/mono2/blobs/{d}").code == "BLOB_UNKNOWN"


def test_post_then_put(reg: Server) -> None:
    data = b"post then put"
    r = req(reg, "POST", "/v2/pp/blobs/uploads/")
    assert r.status == 202
    loc = r.headers["Location"]
    assert loc.startswith("/v2/pp/blobs/uploads/") and r.headers["Range"] == "0-0"
    assert r.headers["Docker-Upload-UUID"] in loc
    r = req(reg, "PUT", f"{loc}?digest={digest(data)}", data)
    assert r.status == 201 and r.headers["Docker-Content-Digest"] == digest(data)
    assert req(reg, "GET", f"/v2/pp/blobs/{digest(data)}").body == data
    # the session is over
    assert req(reg, "GET", loc).code == "BLOB_UPLOAD_UNKNOWN"


def test_chunked_upload_with_status_and_416(reg: Server) -> None:
    data = os.urandom(5000)
    loc = req(reg, "POST", "/v2/chunked/blobs/uploads/").headers["Location"]
    r = req(reg, "PATCH", loc, data[:2000], {"Content-Range": "0-1999"})
    assert r.status == 202 and r.headers["Range"] == "0-1999"
    loc = r.headers["Location"]
    st = req(reg, "GET", loc)
    assert st.status == 204 and st.headers["Range"] == "0-1999"
    # out of order, and a length that disagrees with the range: 416, nothing appended
    r = req(reg, "PATCH", loc, data[3000:4000], {"Content-Range": "3000-3999"})
    assert r.status == 416 and r.headers["Range"] == "0-1999"
    r = req(reg, "PATCH", loc, data[2000:2500], {"Content-Range": "2000-2999"})
    assert r.status == 416
    assert req(reg, "GET", loc).headers["Range"] == "0-1999"
    # a chunk without Content-Range appends (streamed upload)
    r = req(reg, "PATCH", loc, data[2000:4000])
    assert r.status == 202 and r.headers["Range"] == "0-3999"
    # the last chunk rides on the PUT
    r = req(reg, "PUT", f"{loc}?digest={digest(data)}", data[4000:], {"Content-Range": "4000-4999"})
    assert r.status == 201
    assert req(reg, "GET", f"/v2/chunked/blobs/{digest(data)}").body == data


def test_upload_cancel_and_unknown_sessions(reg: Server) -> None:
    loc = req(reg, "POST", "/v2/cancel/blobs/uploads/").headers["Location"]
    uid = loc.rsplit("/", 1)[1]
    # a session belongs to its repository
    assert req(reg, "GET", f"/v2/cancel-other/blobs/uploads/{uid}").code == "BLOB_UPLOAD_UNKNOWN"
    assert req(reg, "DELETE", loc).status == 204
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        r = req(reg, method, f"{loc}?digest={digest(b'')}", b"x" if method != "GET" else None)
        assert (r.status, r.code) == (404, "BLOB_UPLOAD_UNKNOWN"), method
    r = req(reg, "PATCH", "/v2/cancel/blobs/uploads/../../x", b"x")
    assert r.status in (400, 404)
    r = req(reg, "PATCH", "/v2/cancel/blobs/uploads/" + "0" * 32, b"x")
    assert r.code == "BLOB_UPLOAD_UNKNOWN"


def test_bad_digests_store_nothing(reg: Server) -> None:
    data = b"the real content"
    wrong = digest(b"something else")
    before = blob_files(reg)
    r = req(reg, "POST", f"/v2/baddig/blobs/uploads/?digest={wrong}", data)
    assert (r.status, r.code) == (400, "DIGEST_INVALID")
    r = req(reg, "POST", "/v2/baddig/blobs/uploads/?digest=sha256:nothex", data)
    assert (r.status, r.code) == (400, "DIGEST_INVALID")
    loc = req(reg, "POST", "/v2/baddig/blobs/uploads/").headers["Location"]
    assert req(reg, "PUT", loc, data).code == "DIGEST_INVALID"  # no digest at all
    assert req(reg, "PUT", f"{loc}?digest={wrong}", data).code == "DIGEST_INVALID"
    assert req(reg, "HEAD", f"/v2/baddig/blobs/{digest(data)}").status == 404
    assert req(reg, "GET", "/v2/baddig/blobs/sha256:zz").code == "DIGEST_INVALID"
    assert blob_files(reg) == before
    assert not list((reg.root / "tmp").iterdir())


def test_names(reg: Server) -> None:
    for path in ("/v2/Upper/tags/list", "/v2/a/../b/tags/list", "/v2/a%2F..%2Fb/manifests/x"):
        r = req(reg, "GET", path)
        assert (r.status, r.code) == (400, "NAME_INVALID"), path
    r = req(reg, "POST", "/v2/UP/blobs/uploads/?digest=" + digest(b"x"), b"x")
    assert r.code == "NAME_INVALID"
    assert not (reg.root / "repositories" / "UP").exists()
    assert req(reg, "GET", "/v2/never/pushed/tags/list").code == "NAME_UNKNOWN"


def test_manifests_by_tag_and_digest(reg: Server) -> None:
    md, _ = image(reg, "man/a", "v1", b"1")
    for ref in ("v1", md):
        r = req(reg, "GET", f"/v2/man/a/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert r.status == 200 and digest(r.body) == md
        assert r.headers["Content-Type"] == OCI_MANIFEST
        assert r.headers["Docker-Content-Digest"] == md
        h = req(reg, "HEAD", f"/v2/man/a/manifests/{ref}")
        assert h.status == 200 and h.body == b"" and h.headers["Content-Length"] == str(len(r.body))
    # a Docker v2s2 manifest is served with the type it was pushed with
    config = json.dumps({"os": "linux"}).encode()
    cd2 = push_blob(reg, "man/a", config)
    dm = manifest_bytes(cd2, len(config), [], DOCKER_MANIFEST)
    r = req(reg, "PUT", "/v2/man/a/manifests/docker", dm, {"Content-Type": DOCKER_MANIFEST})
    assert r.status == 201 and r.headers["Location"] == f"/v2/man/a/manifests/{digest(dm)}"
    assert req(reg, "GET", "/v2/man/a/manifests/docker").headers["Content-Type"] == DOCKER_MANIFEST
    # by digest, the digest must be the body's
    r = req(reg, "PUT", f"/v2/man/a/manifests/{digest(dm)}", dm, {"Content-Type": DOCKER_MANIFEST})
    assert r.status == 201
    r = req(reg, "PUT", f"/v2/man/a/manifests/{md}", dm, {"Content-Type": DOCKER_MANIFEST})
    assert r.code == "DIGEST_INVALID"
    assert req(reg, "GET", "/v2/man/a/manifests/nope").code == "MANIFEST_UNKNOWN"
    assert req(reg, "GET", f"/v2/man/a/manifests/{digest(b'x')}").code == "MANIFEST_UNKNOWN"
    # an index of manifests the repository has
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": 1}],
        }
    ).encode()
    r = req(reg, "PUT", "/v2/man/a/manifests/multi", index, {"Content-Type": OCI_INDEX})
    assert r.status == 201
    assert req(reg, "GET", "/v2/man/a/manifests/multi").headers["Content-Type"] == OCI_INDEX


def test_bad_manifests_store_nothing(reg: Server) -> None:
    _, (cd, ld) = image(reg, "badman", "ok", b"2")
    missing = digest(b"never uploaded")
    cases = [
        (manifest_bytes(cd, 1, [(missing, 1)]), OCI_MANIFEST, 400, "MANIFEST_BLOB_UNKNOWN"),
        (manifest_bytes(missing, 1, [(ld, 1)]), OCI_MANIFEST, 400, "MANIFEST_BLOB_UNKNOWN"),
        (b"{not json", OCI_MANIFEST, 400, "MANIFEST_INVALID"),
        (manifest_bytes(cd, 1, [(ld, 1)]), DOCKER_MANIFEST, 400, "MANIFEST_INVALID"),
        (manifest_bytes(cd, 1, [(ld, 1)], annotations={"x": "y" * 70000}), OCI_MANIFEST, 413, ""),
        (manifest_bytes(cd, 1, [(ld, 1)], schemaVersion=1), OCI_MANIFEST, 400, "MANIFEST_INVALID"),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_INDEX,
                    "manifests": [{"mediaType": OCI_MANIFEST, "digest": missing, "size": 1}],
                }
            ).encode(),
            OCI_INDEX,
            400,
            "MANIFEST_BLOB_UNKNOWN",
        ),
    ]
    revisions = reg.root / "repositories/badman/_manifests/revisions/sha256"
    before_revs = set(os.listdir(revisions))
    before_blobs = blob_files(reg)
    for body, ctype, status, code in cases:
        r = req(reg, "PUT", "/v2/badman/manifests/bad", body, {"Content-Type": ctype})
        assert r.status == status, (body[:80], r.body)
        assert r.code == (code or "MANIFEST_INVALID")
        assert req(reg, "GET", f"/v2/badman/manifests/{digest(body)}").status == 404
    r = req(reg, "PUT", "/v2/badman/manifests/-bad-tag", manifest_bytes(cd, 1, [(ld, 1)]))
    assert r.status == 400
    assert req(reg, "GET", "/v2/badman/manifests/bad").code == "MANIFEST_UNKNOWN"
    assert req(reg, "GET", "/v2/badman/tags/list").json()["tags"] == ["ok"]
    assert set(os.listdir(revisions)) == before_revs
    assert blob_files(reg) == before_blobs


def follow(s: Server, path: str, key: str) -> tuple[list[str], int]:
    """Every item of a paginated listing, following Link headers; and the page count."""
    items: list[str] = []
    pages = 0
    next_path: str | None = path
    while next_path:
        r = req(s, "GET", next_path)
        assert r.status == 200
        items += r.json()[key]
        pages += 1
        link = r.headers.get("Link")
        next_path = link.split(";")[0].strip("<> ") if link else None
        assert pages < 100
    return items, pages


def test_tag_pagination(reg: Server) -> None:
    tags = [f"t{i}" for i in range(7)]
    for t in tags:
        image(reg, "paged", t, b"3")
    r = req(reg, "GET", "/v2/paged/tags/list")
    assert r.json() == {"name": "paged", "tags": tags} and "Link" not in r.headers
    r = req(reg, "GET", "/v2/paged/tags/list?n=3")
    assert r.json()["tags"] == ["t0", "t1", "t2"]
    assert r.headers["Link"] == '</v2/paged/tags/list?n=3&last=t2>; rel="next"'
    assert follow(reg, "/v2/paged/tags/list?n=3", "tags") == (tags, 3)
    assert req(reg, "GET", "/v2/paged/tags/list?n=2&last=t4").json()["tags"] == ["t5", "t6"]
    assert req(reg, "GET", "/v2/paged/tags/list?n=0").json()["tags"] == []


def test_catalog_pagination(reg: Server) -> None:
    for i in range(3):
        push_blob(reg, f"cat/r{i}", b"c")
    full = req(reg, "GET", "/v2/_catalog").json()["repositories"]
    assert {"cat/r0", "cat/r1", "cat/r2"} <= set(full) and full == sorted(full)
    items, pages = follow(reg, "/v2/_catalog?n=2", "repositories")
    assert items == full and pages == (len(full) + 1) // 2
    r = req(reg, "GET", "/v2/_catalog?n=1&last=cat/r0")
    assert r.json()["repositories"] == ["cat/r1"]
    assert r.headers["Link"] == '</v2/_catalog?n=1&last=cat/r1>; rel="next"'


def test_cross_repository_mount(reg: Server) -> None:
    d = push_blob(reg, "mount/src", b"shared layer")
    r = req(reg, "POST", f"/v2/mount/dst/blobs/uploads/?mount={d}&from=mount/src")
    assert r.status == 201 and r.headers["Location"] == f"/v2/mount/dst/blobs/{d}"
    assert r.headers["Docker-Content-Digest"] == d
    assert req(reg, "GET", f"/v2/mount/dst/blobs/{d}").body == b"shared layer"
    # the source lacks the blob: an upload session instead
    other = digest(b"not there")
    r = req(reg, "POST", f"/v2/mount/dst2/blobs/uploads/?mount={other}&from=mount/src")
    assert r.status == 202 and "/blobs/uploads/" in r.headers["Location"]
    assert len(list((reg.root / "blobs/sha256").glob(d.split(":")[1]))) == 1  # stored once


def test_deletes(reg: Server) -> None:
    md, (_, ld) = image(reg, "del/a", "v1", b"4")
    r = req(reg, "PUT", "/v2/del/a/manifests/v2", req(reg, "GET", f"/v2/del/a/manifests/{md}").body,
            {"Content-Type": OCI_MANIFEST})  # fmt: skip
    assert r.status == 201
    # deleting a tag leaves the manifest
    assert req(reg, "DELETE", "/v2/del/a/manifests/v2").status == 202
    assert req(reg, "GET", "/v2/del/a/tags/list").json()["tags"] == ["v1"]
    assert req(reg, "GET", f"/v2/del/a/manifests/{md}").status == 200
    # deleting by digest removes the manifest and its tags
    assert req(reg, "DELETE", f"/v2/del/a/manifests/{md}").status == 202
    assert req(reg, "GET", "/v2/del/a/manifests/v1").code == "MANIFEST_UNKNOWN"
    assert req(reg, "GET", "/v2/del/a/tags/list").json()["tags"] == []
    assert req(reg, "DELETE", f"/v2/del/a/manifests/{md}").code == "MANIFEST_UNKNOWN"
    assert req(reg, "DELETE", f"/v2/del/a/blobs/{ld}").status == 202
    assert req(reg, "HEAD", f"/v2/del/a/blobs/{ld}").status == 404
    assert req(reg, "DELETE", f"/v2/del/a/blobs/{ld}").code == "BLOB_UNKNOWN"


def test_referrers(reg: Server) -> None:
    subject, _ = image(reg, "refs", "base", b"5")
    empty = push_blob(reg, "refs", b"{}")
    arts = {}
    for art in ("application/vnd.example.sbom", "application/vnd.example.sig"):
        m = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": art,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty,
                           "size": 2},
                "layers": [],
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
                "annotations": {"kind": art},
            }
        ).encode()  # fmt: skip
        r = req(reg, "PUT", f"/v2/refs/manifests/{digest(m)}", m, {"Content-Type": OCI_MANIFEST})
        assert r.status == 201 and r.headers["OCI-Subject"] == subject
        arts[art] = (digest(m), len(m))
    r = req(reg, "GET", f"/v2/refs/referrers/{subject}")
    assert r.status == 200 and r.headers["Content-Type"] == OCI_INDEX
    index = r.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    got = {m["artifactType"]: (m["digest"], m["size"]) for m in index["manifests"]}
    assert got == arts
    assert all(m["mediaType"] == OCI_MANIFEST for m in index["manifests"])
    sbom = "application/vnd.example.sbom"
    r = req(reg, "GET", f"/v2/refs/referrers/{subject}?artifactType={quote(sbom)}")
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in r.json()["manifests"]] == [arts[sbom][0]]
    assert r.json()["manifests"][0]["annotations"] == {"kind": sbom}
    # a subject nobody refers to, and a deleted referrer
    assert req(reg, "GET", f"/v2/refs/referrers/{digest(b'z')}").json()["manifests"] == []
    assert req(reg, "DELETE", f"/v2/refs/manifests/{arts[sbom][0]}").status == 202
    left = req(reg, "GET", f"/v2/refs/referrers/{subject}").json()["manifests"]
    assert [m["artifactType"] for m in left] == ["application/vnd.example.sig"]
    assert req(reg, "GET", "/v2/refs/referrers/sha256:bad").code == "DIGEST_INVALID"


def test_access_log_lines(reg: Server) -> None:
    req(reg, "GET", "/v2/accesslog/tags/list")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in reg.access.read_text().splitlines()]
        hits = [x for x in lines if x["path"] == "/v2/accesslog/tags/list"]
        if hits:
            break
        time.sleep(0.05)
    assert hits[0]["method"] == "GET" and hits[0]["status"] == 404
    assert {"bytes", "duration_ms", "user", "timestamp"} <= set(hits[0])


# --- servers of their own -------------------------------------------------------


def test_no_delete(tmp_path: Path) -> None:
    with running(tmp_path / "r", "--no-delete") as s:
        md, (cd, _) = image(s, "nd", "v1", b"6")
        for path in (f"/v2/nd/manifests/{md}", f"/v2/nd/blobs/{cd}", "/v2/nd/manifests/v1"):
            r = req(s, "DELETE", path)
            assert (r.status, r.code) == (405, "UNSUPPORTED")
        assert req(s, "GET", "/v2/nd/manifests/v1").status == 200


def test_sigterm_exits_zero(tmp_path: Path) -> None:
    s = start(tmp_path / "r")
    assert req(s, "GET", "/v2/").status == 200
    assert s.stop() == 0


def _patch_half_then_die(s: Server, loc: str, data: bytes) -> None:
    """Send a PATCH promising all of ``data``, send half, and kill -9 the server."""
    c = http.client.HTTPConnection(s.host, timeout=30)
    c.putrequest("PATCH", loc)
    c.putheader("Content-Length", str(len(data)))
    c.endheaders()
    c.send(data[: len(data) // 2])
    upload = s.root / "uploads" / loc.rsplit("/", 1)[1]
    deadline = time.monotonic() + 10
    while upload.stat().st_size < len(data) // 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(timeout=20)
    c.close()


def test_killed_upload_resumes_and_never_shows(tmp_path: Path) -> None:
    data = os.urandom(8 << 20)
    d = digest(data)
    s = start(tmp_path / "r")
    loc = req(s, "POST", "/v2/crash/blobs/uploads/").headers["Location"]
    _patch_half_then_die(s, loc, data)
    assert not (s.root / "blobs" / "sha256" / d.split(":")[1]).exists()
    s = start(tmp_path / "r")
    try:
        assert req(s, "HEAD", f"/v2/crash/blobs/{d}").status == 404
        st = req(s, "GET", loc)
        assert st.status == 204
        have = int(st.headers["Range"].split("-")[1]) + 1
        assert 0 < have <= len(data) // 2
        # resume from where the server says it is
        r = req(s, "PATCH", loc, data[have:], {"Content-Range": f"{have}-{len(data) - 1}"})
        assert r.status == 202
        r = req(s, "PUT", f"{loc}?digest={d}")
        assert r.status == 201
        assert req(s, "GET", f"/v2/crash/blobs/{d}").body == data
        assert not list((s.root / "uploads").iterdir())
    finally:
        s.kill()


def test_killed_monolithic_upload_leaves_no_blob(tmp_path: Path) -> None:
    data = os.urandom(8 << 20)
    d = digest(data)
    s = start(tmp_path / "r")
    c = http.client.HTTPConnection(s.host, timeout=30)
    c.putrequest("POST", f"/v2/crash2/blobs/uploads/?digest={d}")
    c.putheader("Content-Length", str(len(data)))
    c.endheaders()
    c.send(data[: len(data) // 2])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        p.stat().st_size > 0 for p in (s.root / "uploads").iterdir() if p.suffix != ".json"
    ):
        time.sleep(0.02)
    s.kill()
    c.close()
    assert blob_files(s) == set()
    s = start(tmp_path / "r")
    try:
        assert req(s, "HEAD", f"/v2/crash2/blobs/{d}").status == 404
        # starting over works
        assert push_blob(s, "crash2", data) == d
        assert req(s, "GET", f"/v2/crash2/blobs/{d}").body == data
    finally:
        s.kill()


def _gc(root: Path, *extra: str, cli: bool = False) -> list[str]:
    entry = ["seacan.cli.main", "registry"] if cli else ["seacan.services.registry"]
    out = subprocess.run(
        [sys.executable, "-m", *entry, "gc", "--root", str(root), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return sorted(line.split()[-1] for line in out.stdout.splitlines())


def test_gc_removes_exactly_unreferenced_blobs(tmp_path: Path) -> None:
    with running(tmp_path / "r") as s:
        shared = push_blob(s, "gc/a", b"shared")
        assert req(s, "POST", f"/v2/gc/b/blobs/uploads/?mount={shared}&from=gc/a").status == 201
        ma, blobs_a = image(s, "gc/a", "v1", b"a")
        mb, blobs_b = image(s, "gc/b", "v1", b"b")
        config = json.dumps({"os": "linux"}).encode()
        cd = push_blob(s, "gc/b", config)
        mshared = manifest_bytes(cd, len(config), [(shared, 6)])
        r = req(s, "PUT", "/v2/gc/a/manifests/shared", mshared, {"Content-Type": OCI_MANIFEST})
        assert r.status == 400  # cd is not in gc/a
        assert req(s, "PUT", "/v2/gc/b/manifests/shared", mshared,
                   {"Content-Type": OCI_MANIFEST}).status == 201  # fmt: skip
        loose = push_blob(s, "gc/a", b"never referenced")
        # an upload in progress elsewhere
        loc = req(s, "POST", "/v2/gc/c/blobs/uploads/").headers["Location"]
        assert req(s, "PATCH", loc, b"partial").status == 202
        assert req(s, "DELETE", f"/v2/gc/b/manifests/{mb}").status == 202
        gone = sorted([*blobs_b, mb, loose])
        assert _gc(s.root, "--dry-run") == gone
        assert blob_files(s) >= set(gone)
        # while the server runs
        assert _gc(s.root, cli=True) == gone
        assert blob_files(s) == {ma, *blobs_a, shared, cd, digest(mshared)}
        assert req(s, "GET", f"/v2/gc/a/manifests/{ma}").status == 200
        for d in blobs_a:
            assert req(s, "GET", f"/v2/gc/a/blobs/{d}").status == 200
        assert req(s, "GET", f"/v2/gc/b/blobs/{shared}").status == 200
        assert req(s, "HEAD", f"/v2/gc/a/blobs/{loose}").status == 404
        assert req(s, "GET", loc).headers["Range"] == "0-6"
        assert _gc(s.root) == []


# --- auth and TLS ---------------------------------------------------------------


def _htpasswd(path: Path, *users: tuple[str, str, str]) -> None:
    lines = []
    for user, password, flag in users:
        out = subprocess.run(
            ["htpasswd", "-nb", flag, user, password],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        lines.append(out.stdout.strip())
    path.write_text("\n".join(lines) + "\n")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth(tmp_path: Path) -> None:
    pw = tmp_path / "htpasswd"
    _htpasswd(pw, ("alice", "wonder", "-B"), ("bob", "builder", "-m"), ("sha", "one", "-s"))
    with running(tmp_path / "r", "--htpasswd", str(pw)) as s:
        for path in ("/v2/", "/v2/x/tags/list", "/v2/_catalog"):
            r = req(s, "GET", path)
            assert (r.status, r.code) == (401, "UNAUTHORIZED")
            assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert req(s, "GET", "/v2/", headers=basic("alice", "nope")).status == 401
        assert req(s, "GET", "/v2/", headers=basic("mallory", "wonder")).status == 401
        r = req(s, "POST", f"/v2/x/blobs/uploads/?digest={digest(b'x')}", b"x")
        assert r.status == 401 and not (s.root / "repositories" / "x").exists()
        for user, password in (("alice", "wonder"), ("bob", "builder"), ("sha", "one")):
            assert req(s, "GET", "/v2/", headers=basic(user, password)).status == 200
        image(s, "x", "v1", b"7", headers=basic("alice", "wonder"))
        r = req(s, "GET", "/v2/x/manifests/v1", headers=basic("bob", "builder"))
        assert r.status == 200
    users = {json.loads(x)["user"] for x in s.access.read_text().splitlines()}
    assert {"alice", "bob", "sha"} <= users


def _token(s: Server, user: str, password: str, *scopes: str) -> Resp:
    q = "&".join(f"scope={quote(x)}" for x in scopes)
    return req(s, "GET", f"/token?service={quote(s.host)}&{q}", headers=basic(user, password))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_auth_scopes(tmp_path: Path) -> None:
    pw = tmp_path / "htpasswd"
    _htpasswd(pw, ("alice", "wonder", "-B"), ("bob", "builder", "-B"))
    acl = tmp_path / "acl.json"
    acl.write_text(json.dumps({"alice": {"team/a": ["pull", "push"]}, "bob": {"team/*": ["pull"]}}))
    secret = tmp_path / "secret"
    secret.write_bytes(os.urandom(32))
    args = ["--htpasswd", str(pw), "--token-auth", "--token-acl", str(acl)]
    with running(tmp_path / "r", *args, "--token-secret", str(secret)) as s:
        r = req(s, "GET", "/v2/")
        assert r.status == 401
        challenge = r.headers["WWW-Authenticate"]
        assert challenge == f'Bearer realm="{s.url}/token",service="{s.host}"'
        r = req(s, "POST", f"/v2/team/a/blobs/uploads/?digest={digest(b'x')}", b"x")
        assert r.status == 401
        assert 'scope="repository:team/a:pull,push"' in r.headers["WWW-Authenticate"]
        # the token endpoint checks the password
        assert req(s, "GET", "/token?service=x&scope=repository:team/a:pull").status == 401
        assert _token(s, "alice", "bad", "repository:team/a:pull").status == 401
        r = _token(s, "alice", "wonder", "repository:team/a:pull,push", "repository:team/b:push")
        assert r.status == 200 and r.json()["expires_in"] == 300
        tok = r.json()["token"]
        assert r.json()["access_token"] == tok
        md, _ = image(s, "team/a", "v1", b"8", headers=bearer(tok))
        # the same token cannot push to team/b: refused, nothing stored
        r = req(s, "POST", f"/v2/team/b/blobs/uploads/?digest={digest(b'y')}", b"y", bearer(tok))
        assert (r.status, r.code) == (403, "DENIED")
        assert not (s.root / "repositories/team/b").exists()
        # nor can a token asked for team/b, which the ACL does not grant
        tok_b = _token(s, "alice", "wonder", "repository:team/b:pull,push").json()["token"]
        r = req(s, "POST", f"/v2/team/b/blobs/uploads/?digest={digest(b'y')}", b"y", bearer(tok_b))
        assert r.status == 403
        # bob may pull team/* but not push
        tok_bob = _token(s, "bob", "builder", "repository:team/a:pull,push").json()["token"]
        assert req(s, "GET", "/v2/team/a/manifests/v1", headers=bearer(tok_bob)).status == 200
        assert req(s, "DELETE", f"/v2/team/a/manifests/{md}", headers=bearer(tok_bob)).status == 403
        r = req(s, "POST", "/v2/team/a/blobs/uploads/", headers=bearer(tok_bob))
        assert r.status == 403
        # a forged token
        assert req(s, "GET", "/v2/", headers=bearer(tok + "x")).status == 401
        # OAuth2 password grant, as docker sends it
        form = f"grant_type=password&username=alice&password=wonder&service={s.host}"
        form += "&scope=" + quote("repository:team/a:pull")
        r = req(s, "POST", "/token", form.encode(),
                {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert r.status == 200
        tok = r.json()["access_token"]
        assert req(s, "GET", "/v2/team/a/tags/list", headers=bearer(tok)).json()["tags"] == ["v1"]


def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    with running(tmp_path / "r", "--tls-cert", str(cert), "--tls-key", str(key)) as s:
        assert s.url.startswith("https://127.0.0.1:")
        ctx = ssl.create_default_context(cafile=str(cert))
        assert req(s, "GET", "/v2/", ctx=ctx).status == 200
        d = push_blob(s, "tls", b"secret bytes", ctx=ctx)
        assert req(s, "GET", f"/v2/tls/blobs/{d}", ctx=ctx).body == b"secret bytes"
        # a client that does not trust the certificate, and plain HTTP, get nothing
        with pytest.raises(ssl.SSLError):
            req(s, "GET", "/v2/", ctx=ssl.create_default_context())
        plain = http.client.HTTPConnection(s.host, timeout=10)
        try:
            plain.request("GET", "/v2/")
            assert plain.getresponse().status == 400
        except (ConnectionError, http.client.HTTPException):
            pass
        finally:
            plain.close()
    # client certificates: required once --tls-client-ca is given
    args = ["--tls-cert", str(cert), "--tls-key", str(key), "--tls-client-ca", str(cert)]
    with running(tmp_path / "mtls", *args) as s:
        ctx = ssl.create_default_context(cafile=str(cert))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            req(s, "GET", "/v2/", ctx=ctx)
        ctx.load_cert_chain(str(cert), str(key))
        assert req(s, "GET", "/v2/", ctx=ctx).status == 200
