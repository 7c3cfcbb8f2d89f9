"""``seacan run``'s -v / --mount / --tmpfs parsers, volume names, and volume filters."""

from __future__ import annotations

import pytest

from seacan import errors, volumes
from seacan.engine import mounts as rv
from seacan.services.volumes import store

pytestmark = pytest.mark.unit

M = rv.MountRequest


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("/data", M("volume", "/data")),
        ("/data:ro", M("volume", "/data", readonly=True)),
        ("data:/data", M("volume", "/data", "data")),
        ("my.vol_1-x:/d/../e:ro", M("volume", "/e", "my.vol_1-x", readonly=True)),
        ("data:/data:nocopy,rw", M("volume", "/data", "data", nocopy=True)),
        ("/srv:/srv", M("bind", "/srv", "/srv")),
        ("/srv:/w:ro,rslave", M("bind", "/w", "/srv", readonly=True, propagation="rslave")),
        ("/srv:/w:z", M("bind", "/w", "/srv")),
        ("/data/", M("volume", "/data")),
    ],
)
def test_parse_volume(spec: str, want: rv.MountRequest) -> None:
    assert rv.parse_volume(spec) == want


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("../x:/y", "invalid volume name '../x'"),
        ("a/b:/y", "give an absolute path"),
        ("./x:/y", "invalid volume name"),
        ("x:/y", "invalid volume name 'x'"),  # Docker: at least two characters
        ("data:rel", "must be absolute"),
        ("rel", "must be absolute"),
        ("data:/", "cannot be '/'"),
        ("data:/y:rx", "invalid mode 'rx'"),
        ("data:/y:ro,rw", "more than one of ro/rw"),
        ("data:/y:rslave", "invalid mode 'rslave' for a volume"),
        ("/srv:/y:nocopy", "invalid mode 'nocopy' for a bind"),
        ("a:/b:ro:x", "too many ':'"),
        (":/y", "the source is empty"),
        ("data:/y:", "the mode is empty"),
    ],
)
def test_parse_volume_errors(spec: str, message: str) -> None:
    with pytest.raises(errors.InvalidArgument) as e:
        rv.parse_volume(spec)
    assert message in e.value.message
    assert spec in e.value.message


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("target=/d", M("volume", "/d")),
        ("type=volume,source=v1,target=/d,readonly", M("volume", "/d", "v1", readonly=True)),
        ("src=v1,dst=/d,ro=false,volume-nocopy", M("volume", "/d", "v1", nocopy=True)),
        (
            "type=volume,src=v1,dst=/d,volume-opt=type=tmpfs,volume-opt=device=tmpfs,"
            "volume-opt=o=size=1m,volume-label=a=b",
            M(
                "volume", "/d", "v1",
                volume_options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"},
                volume_labels={"a": "b"},
            ),
        ),
        (
            "type=bind,source=/srv,destination=/w,bind-propagation=shared,bind-nonrecursive",
            M("bind", "/w", "/srv", propagation="shared", nonrecursive=True),
        ),
        (
            "type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777",
            M("tmpfs", "/t", tmpfs_options=(f"size={64 << 20}", "mode=1777")),
        ),
        ('"type=volume","target=/a,b"', M("volume", "/a,b")),  # CSV quoting, as Docker
    ],
)  # fmt: skip
def test_parse_mount(spec: str, want: rv.MountRequest) -> None:
    assert rv.parse_mount(spec) == want


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("type=nfs,target=/y", "type 'nfs'"),
        ("target=/y,colour=red", "unexpected key 'colour'"),
        ("target", "is not key=value"),
        ("type=bind,target=/y", "needs a source"),
        ("type=bind,src=rel,target=/y", "must be absolute"),
        ("type=tmpfs,src=x,target=/y", "takes no source"),
        ("type=bind,src=/s,dst=/y,volume-nocopy", "volume-* options do not apply to type bind"),
        ("type=volume,dst=/y,tmpfs-size=1m", "tmpfs-* options do not apply to type volume"),
        ("type=tmpfs,dst=/y,bind-propagation=shared", "bind-* options do not apply"),
        ("type=tmpfs,dst=/y,tmpfs-mode=99x", "not octal"),
        ("type=tmpfs,dst=/y,tmpfs-size=lots", "invalid size"),
        ("src=v1", "target (container path) is missing"),
        ("src=../v,dst=/y", "invalid volume name"),
        ("dst=/y,readonly=maybe", "invalid value 'maybe'"),
        ("dst=/y,volume-opt=colour=red", "invalid volume option 'colour'"),
        ("dst=/y,volume-opt=type=tmpfs", "missing required option 'device'"),
        ("dst=/y,volume-driver=nfs", "only 'local'"),
        ("type=bind,src=/s,dst=/y,bind-propagation=up", "invalid bind-propagation"),
    ],
)
def test_parse_mount_errors(spec: str, message: str) -> None:
    with pytest.raises(errors.InvalidArgument) as e:
        rv.parse_mount(spec)
    assert message in e.value.message


def test_parse_tmpfs() -> None:
    assert rv.parse_tmpfs("/run") == M("tmpfs", "/run")
    assert rv.parse_tmpfs("/run:size=64m,mode=1777,ro") == M(
        "tmpfs", "/run", readonly=True, tmpfs_options=("size=64m", "mode=1777")
    )
    for bad in ("run", "/", "/t:size=1m;x", "/t:a b"):
        with pytest.raises(errors.InvalidArgument):
            rv.parse_tmpfs(bad)


def test_duplicate_targets_refused() -> None:
    with pytest.raises(errors.InvalidArgument, match="duplicate mount point: /d"):
        rv.parse_all(["v1:/d"], ["type=tmpfs,target=/d/"], [])
    assert len(rv.parse_all(["v1:/a"], ["target=/b"], ["/c"])) == 3


def test_image_volumes_skip_covered_paths() -> None:
    config = {"Volumes": {"/data": {}, "/logs/": {}, "cache": {}}}
    got = rv.image_volumes(config, [M("bind", "/data", "/srv")])
    assert got == [M("volume", "/cache"), M("volume", "/logs")]
    assert rv.image_volumes({}, []) == []


def test_oci_mounts() -> None:
    assert rv.oci_mount(M("volume", "/d", "v", readonly=True), "/vol/_data") == {
        "destination": "/d", "type": "bind", "source": "/vol/_data",
        "options": ["rbind", "rprivate", "ro"],
    }  # fmt: skip
    assert rv.oci_mount(M("bind", "/w", "/srv", propagation="rslave", nonrecursive=True)) == {
        "destination": "/w", "type": "bind", "source": "/srv", "options": ["bind", "rslave", "rw"],
    }  # fmt: skip
    assert rv.oci_mount(M("tmpfs", "/t", tmpfs_options=("size=1m",))) == {
        "destination": "/t", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "size=1m"],
    }  # fmt: skip


def test_check_binds(tmp_path: object) -> None:
    rv.check_binds([M("bind", "/x", "/")])
    with pytest.raises(errors.NotFound, match="bind source path '/no/such' does not exist"):
        rv.check_binds([M("bind", "/x", "/no/such")])


@pytest.mark.parametrize("name", ["ab", "a1", "my-vol.2_x", "A" * 255, "0" * 64])
def test_volume_names_ok(name: str) -> None:
    assert volumes.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "a", "..", ".a", "-a", "_a", "a/b", "a b", "é1", "A" * 256])
def test_volume_names_refused(name: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        volumes.validate_name(name)


def test_volume_options() -> None:
    assert volumes.validate_options({}) == {}
    opts = {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    assert volumes.validate_options(opts) == opts
    with pytest.raises(errors.InvalidArgument, match="missing required option 'type'"):
        volumes.validate_options({"device": "tmpfs"})
    with pytest.raises(errors.InvalidArgument, match="invalid volume option 'size'"):
        volumes.validate_options({"size": "1g"})


def test_filters() -> None:
    used = volumes.Volume("used", labels={"a": "1", "b": ""}, containers=("c1",))
    free = volumes.Volume("free-one", labels={"a": "2"})

    def pick(*exprs: str) -> list[str]:
        parsed = store.parse_filters(exprs)
        return [v.name for v in (used, free) if store.matches(v, parsed)]

    assert pick() == ["used", "free-one"]
    assert pick("label=a") == ["used", "free-one"]
    assert pick("label=a=1") == ["used"]
    assert pick("label=a", "label=b") == ["used"]
    assert pick("dangling=true") == ["free-one"]
    assert pick("dangling=0") == ["used"]
    assert pick("name=free", "name=use") == ["used", "free-one"]
    assert pick("driver=local") == ["used", "free-one"]
    assert pick("driver=nfs") == []
    for bad in ("colour=red", "label", "dangling=maybe"):
        with pytest.raises(errors.InvalidArgument, match="invalid filter"):
            store.parse_filters([bad])
    with pytest.raises(errors.InvalidArgument):
        store.parse_filters(["dangling=true"], ("label",))
