"""Image archives: import and export OCI image layouts and ``docker save`` archives.

Import does what ``ctr images import`` does, with every check made *before*
an image record exists (so a failed import leaves no image)::

    1. a lease (containerd.io/gc.expire = now + 1h) for everything below;
    2. one pass over the tar stream (plain or gzip): each ``blobs/sha256/<hex>``
       is streamed into the content store (ref ``tar-blobs/sha256/<hex>``,
       ``expected`` set) and its digest checked; docker-save files are kept
       by name until ``manifest.json`` says what they are;
    3. the image index: ``index.json`` of an OCI layout, or one Docker schema 2
       manifest per ``manifest.json`` entry, written the way containerd's
       importer writes it (so digests are stable and match ctr's);
    4. a walk from each image target (other platforms' manifests only with
       ``all_platforms``): every blob must be in the archive or the store,
       with the size its descriptor says; indexes get the labels
       ``containerd.io/gc.ref.content.m.<i>``, manifests ``...config`` and
       ``...l.<i>`` (exactly as ctr sets them);
    5. unpack of the host platform (:mod:`seacan.images.unpack`);
    6. ``Images.Create`` (``Images.Update`` of the target when it exists).

Export writes an OCI image layout (``oci-layout``, ``index.json`` whose
entries carry ``io.containerd.image.name`` and
``org.opencontainers.image.ref.name``, ``blobs/sha256/*``) plus a docker
``manifest.json``, entries sorted by name, mtime 0: the same images give the
same bytes, and both seacan and ``ctr images import`` read it back to the
same digests.

Errors are InvalidArgument for a bad archive (``archive is corrupt: ...``,
``archive is truncated: ...``, ``archive entry blobs/sha256/<hex>: digest
mismatch ...``) and NotFound for a blob that is neither in the archive nor
in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import posixpath
import re
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Any, Protocol, Self

from seacan import config, content, errors, log, oci
from seacan.diff import Applier
from seacan.images import Image, ImageStore
from seacan.images import unpack as unpacker
from seacan.snapshots import Snapshotter

_log = log.get(__name__)

LEASE_TTL = dt.timedelta(hours=1)
OCI_LAYOUT_VERSION = "1.0.0"
SMALL = 1 << 20  # archive entries up to this size are read into memory
CACHE_BUDGET = 64 << 20  # at most this much of them is kept
MAX_META = 16 << 20  # index.json, manifest.json, oci-layout, repositories
LABEL_REF_PREFIX = "containerd.io/gc.ref.content."

_META = frozenset({"oci-layout", "index.json", "manifest.json", "repositories"})
_BLOB_PATH = re.compile(r"^blobs/([^/]+)/([^/]+)$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_V1_METADATA = re.compile(r"^[^/]+/(json|VERSION)$")  # docker-save v1 layer files nobody reads
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


# --- references -----------------------------------------------------------------

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^((?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::({_TAG}))?(?:@({_DIGEST}))?$",
    re.ASCII,
)
_NAME = re.compile(rf"^(?:({_DOMAIN})/)?({_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)$", re.ASCII)
_IDENTIFIER = re.compile(r"^[a-f0-9]{64}$")
DEFAULT_DOMAIN = "docker.io"
_LEGACY_DOMAIN = "index.docker.io"
_OFFICIAL = "library"
MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed, normalized image reference: ``docker.io/library/busybox:latest``."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def familiar(self) -> str:
        """The short form docker prints: ``busybox:latest``, ``me/app:1``."""
        path = self.path
        out = f"{self.domain}/{path}"
        if self.domain == DEFAULT_DOMAIN:
            first, _, rest = path.partition("/")
            out = rest if first == _OFFICIAL and rest and "/" not in rest else path
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    head = name[:i]
    if i == -1 or (
        not any(c in head for c in ".:") and head != "localhost" and head.lower() == head
    ):
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain, rest = head, name[i + 1 :]
    if domain == _LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = f"{_OFFICIAL}/{rest}"
    return domain, rest


def parse_reference(ref: str) -> Reference:
    """docker's ParseNormalizedNamed: ``busybox`` is ``docker.io/library/busybox``.

    InvalidArgument for what docker refuses (uppercase, bad characters, a
    bare 64-hex ID, names over 255 characters).
    """
    if not ref:
        raise errors.InvalidArgument("invalid reference: empty")
    if _IDENTIFIER.match(ref):
        raise errors.InvalidArgument(
            f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings"
        )
    domain, rest = _split_domain(ref)
    remote = rest.split(":", 1)[0].split("@", 1)[0]
    if remote.lower() != remote:
        raise errors.InvalidArgument(
            f"invalid reference {ref!r}: repository name must be lowercase"
        )
    m = _REFERENCE.match(f"{domain}/{rest}")
    if m is None:
        raise errors.InvalidArgument(f"invalid reference format: {ref!r}")
    name, tag, digest = m.group(1), m.group(2) or "", m.group(3) or ""
    if len(name) > MAX_NAME:
        raise errors.InvalidArgument(
            f"invalid reference {ref!r}: repository name longer than {MAX_NAME} characters"
        )
    nm = _NAME.match(name)
    assert nm is not None  # the reference pattern contains the name pattern
    return Reference(domain=nm.group(1) or "", path=nm.group(2), tag=tag, digest=digest)


def normalize_reference(ref: str) -> str:
    """docker's ParseDockerRef: ``busybox:latest`` -> ``docker.io/library/busybox:latest``.

    A name without tag or digest gets ``:latest``; with both, the digest wins.
    """
    r = parse_reference(ref)
    if r.digest:
        return str(replace(r, tag=""))
    if not r.tag:
        r = replace(r, tag="latest")
    return str(r)


def familiar_reference(name: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest`` (a tag added if none)."""
    r = parse_reference(name)
    if not r.tag and not r.digest:
        r = replace(r, tag="latest")
    return r.familiar()


def oci_ref_name(name: str) -> str:
    """The tag part of ``name`` (``latest`` for ``docker.io/library/busybox:latest``).

    As containerd's ``ociReferenceName``: the object after the first ``:``
    or ``@`` past the host, cut at ``@``; "" when there is none.
    """
    if "://" in name or "/" not in name:
        return ""
    _, path = name.split("/", 1)
    m = re.search(r"[:@]", path)
    if m is None:
        return ""
    obj = path[m.start() :].removeprefix(":")
    return obj.split("@", 1)[0]


def _is_prefixed(ref: str, prefix: str) -> bool:
    if not ref.startswith(prefix):
        return False
    return len(ref) == len(prefix) or ref[len(prefix)] in "/:@"


def translate_ref_name(ref_name: str, prefix: str, *, only_prefixed: bool) -> str:
    """What ctr makes of an ``org.opencontainers.image.ref.name`` annotation.

    A bare name (``latest``) becomes ``<prefix>:latest``. A full reference is
    kept; with ``only_prefixed`` (``--base-name`` given) only when it starts
    with the prefix, else it is dropped ("").
    """
    if not prefix:
        return ""
    if any(c in ref_name for c in "/:@"):
        if only_prefixed and not _is_prefixed(ref_name, prefix):
            return ""
        return ref_name
    return f"{prefix}:{ref_name}"


def default_base_name(today: dt.date | None = None) -> str:
    """``import-YYYY-MM-DD``, the prefix ctr gives bare reference names."""
    return f"import-{(today or dt.date.today()):%Y-%m-%d}"


def image_names(
    tops: Sequence[oci.Descriptor],
    *,
    base_name: str = "",
    digests: bool = False,
    today: dt.date | None = None,
) -> list[tuple[str, oci.Descriptor]]:
    """The images an archive's index names, as ``ctr images import`` names them.

    ``io.containerd.image.name`` wins; else ``org.opencontainers.image.ref.name``
    through :func:`translate_ref_name`. ``digests`` adds ``<prefix>@<digest>``.
    """
    prefix = base_name or default_base_name(today)
    out: list[tuple[str, oci.Descriptor]] = []
    for desc in tops:
        name = desc.annotations.get(oci.ANNOTATION_IMAGE_NAME, "")
        if not name and desc.annotations.get(oci.ANNOTATION_REF_NAME):
            name = translate_ref_name(
                desc.annotations[oci.ANNOTATION_REF_NAME], prefix, only_prefixed=bool(base_name)
            )
        if name:
            out.append((name, desc))
        if digests:
            out.append((f"{prefix}@{desc.digest}", desc))
    return out


# --- JSON as Go writes it, and GC labels --------------------------------------------


def go_json(obj: Any) -> bytes:
    """Compact JSON as Go's encoding/json writes it (``<``, ``>``, ``&`` escaped)."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        s = s.replace(ch, esc)
    s = s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return s.encode()


def descriptor_json(d: oci.Descriptor) -> dict[str, Any]:
    """An OCI descriptor in Go's field order, annotation keys sorted (as Go's maps)."""
    out: dict[str, Any] = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
    if d.urls:
        out["urls"] = list(d.urls)
    if d.annotations:
        out["annotations"] = dict(sorted(d.annotations.items()))
    if d.platform is not None:
        out["platform"] = d.platform.to_json()
    return out


def _child_label_key(media_type: str) -> str:
    if media_type in oci.CONFIG_TYPES:
        return LABEL_REF_PREFIX + "config"
    if media_type in oci.MANIFEST_TYPES:
        return LABEL_REF_PREFIX + "m."
    if oci.is_layer(media_type):
        return LABEL_REF_PREFIX + "l."
    return LABEL_REF_PREFIX


def child_gc_labels(children: Sequence[oci.Descriptor]) -> dict[str, str]:
    """The labels a parent blob gets for its children (containerd's SetChildrenLabels).

    ``...content.config``; ``...content.m.<i>`` for manifests; ``...content.l.<i>``
    for layers; ``...content.<i>`` for anything else. ``i`` counts per key; a
    key without a trailing dot gets a number from the second child on.
    """
    counts: dict[str, int] = {}
    labels: dict[str, str] = {}
    for child in children:
        key = _child_label_key(child.media_type)
        i = counts.get(key, 0)
        counts[key] = i + 1
        if i > 0 or key.endswith("."):
            key = f"{key}{i}"
        labels[key] = child.digest
    return labels


# --- reading tar streams ---------------------------------------------------------


# Header errors tarfile raises but typeshed does not list.
_tarfile: Any = tarfile
_END_OF_ARCHIVE: tuple[type[Exception], ...] = (
    _tarfile.EOFHeaderError,
    _tarfile.EmptyHeaderError,
)
_TRUNCATED_HEADER: type[Exception] = _tarfile.TruncatedHeaderError


class _CheckedTarInfo(tarfile.TarInfo):
    """Refuses a bad header anywhere; tarfile alone takes one past offset 0 for the end."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        offset = tarfile_.offset
        try:
            return super().fromtarfile(tarfile_)
        except _END_OF_ARCHIVE:
            raise
        except _TRUNCATED_HEADER:
            raise errors.InvalidArgument(
                f"archive is truncated: incomplete tar header at offset {offset}"
            ) from None
        except tarfile.HeaderError as e:
            if offset == 0:
                raise errors.InvalidArgument(f"not a tar archive: invalid header ({e})") from None
            raise errors.InvalidArgument(
                f"archive is corrupt: invalid tar header at offset {offset} ({e})"
            ) from None


def _tar_error(e: BaseException, where: str) -> errors.SeacanError:
    """A tar, gzip or I/O failure as the InvalidArgument a user can act on."""
    text = str(e) or type(e).__name__
    at = f" in {where}" if where else ""
    if isinstance(e, EOFError) or "unexpected end of data" in text:
        return errors.InvalidArgument(f"archive is truncated: unexpected end of data{at}")
    if "empty file" in text:
        return errors.InvalidArgument("archive is empty")
    if isinstance(e, tarfile.TarError | zlib.error | EOFError) or "gzip" in text.lower():
        return errors.InvalidArgument(f"archive is corrupt: {text}{at}")
    if isinstance(e, OSError):
        return errors.Internal(f"reading the archive{at}: {e.strerror or text}")
    return errors.InvalidArgument(f"archive is corrupt: {text}{at}")


def _open_tar(stream: IO[bytes]) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=stream, mode="r|*", tarinfo=_CheckedTarInfo)
    except errors.SeacanError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        if "empty file" in str(e):
            raise errors.InvalidArgument("archive is empty") from None
        raise errors.InvalidArgument(f"not a tar archive: {e}") from None


def _next(tf: tarfile.TarFile) -> tarfile.TarInfo | None:
    try:
        return tf.next()
    except errors.SeacanError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise _tar_error(e, "") from None


def _read(f: IO[bytes], n: int, name: str, h: Any = None) -> bytes:
    """Exactly ``n`` bytes of the current entry (hashed into ``h``); truncation is an error."""
    try:
        data = f.read(n)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise _tar_error(e, f"archive entry {name}") from None
    if len(data) != n:
        raise errors.InvalidArgument(
            f"archive is truncated: unexpected end of data in archive entry {name}"
        )
    if h is not None:
        h.update(data)
    return data


def _clean(name: str) -> str:
    """Go's path.Clean of a member name, without a leading ``./`` or ``/``."""
    return posixpath.normpath("/" + name).lstrip("/")


def _mismatch(name: str, expected: str, actual: str) -> errors.SeacanError:
    return errors.InvalidArgument(
        f"archive entry {name}: digest mismatch: the data hashes to {actual}, "
        f"not to {expected} as its name says"
    )


# --- import ----------------------------------------------------------------------


class Reporter(unpacker.Reporter, Protocol):
    """What an import tells its user, as it goes."""

    def blob(self, name: str, done: int, total: int) -> None:
        """Bytes of archive entry ``name`` stored so far (``done == total`` at the end)."""
        ...

    def unpacking(self, name: str, target: oci.Descriptor) -> None: ...

    def unpacked(self, name: str, target: oci.Descriptor, chain_id: str) -> None: ...

    def note(self, message: str) -> None: ...


class NullReporter:
    def blob(self, name: str, done: int, total: int) -> None:
        pass

    def layer(self, index: int, count: int, desc: oci.Descriptor, applied: bool) -> None:
        pass

    def unpacking(self, name: str, target: oci.Descriptor) -> None:
        pass

    def unpacked(self, name: str, target: oci.Descriptor, chain_id: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass


class ContentStore(
    content.Provider, content.Ingester, content.Manager, content.IngestManager, Protocol
):
    pass


class ImportStores(Protocol):
    """Everything an import touches; :class:`seacan.client.Client` is one."""

    @property
    def content(self) -> ContentStore: ...

    @property
    def snapshots(self) -> Snapshotter: ...

    @property
    def diff(self) -> Applier: ...

    @property
    def images(self) -> ImageStore: ...

    def lease(
        self, expire: dt.timedelta | None = ...
    ) -> contextlib.AbstractAsyncContextManager[Any]: ...


@dataclass(frozen=True, slots=True)
class ImportOptions:
    base_name: str = ""  # ctr --base-name: prefix for bare ref names; filters full ones
    digests: bool = False  # ctr --digests: also name each image <prefix>@<digest>
    all_platforms: bool = False  # keep and check every platform, not only the host's
    unpack: bool = True
    platform: oci.Platform = field(default_factory=oci.host_platform)
    snapshotter: str = "overlayfs"
    max_blob_bytes: int = config.Limits().max_blob_bytes
    today: dt.date | None = None  # for the default base name; None is today


@dataclass(frozen=True, slots=True)
class ImportedImage:
    name: str
    target: oci.Descriptor
    chain_id: str = ""  # the unpacked top snapshot; "" when not unpacked


@dataclass(slots=True)
class _File:
    """A regular file of the archive, by its cleaned name."""

    name: str
    size: int
    digest: str
    head: bytes  # the first bytes, to tell a compressed layer
    data: bytes | None = None  # kept in memory, not (yet) in the store


@dataclass(frozen=True, slots=True)
class DockerManifest:
    """One entry of a docker-save ``manifest.json``."""

    config: str
    repo_tags: tuple[str, ...]
    layers: tuple[str, ...]


def parse_docker_manifest(data: bytes) -> list[DockerManifest]:
    """``manifest.json`` of a ``docker save`` archive; InvalidArgument naming what is wrong."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.InvalidArgument(f"manifest.json: invalid JSON: {e}") from None
    if not isinstance(obj, list):
        raise errors.InvalidArgument("manifest.json: a JSON array expected")
    out = []
    for i, entry in enumerate(obj):
        what = f"manifest.json: entry {i}"
        if not isinstance(entry, dict):
            raise errors.InvalidArgument(f"{what}: a JSON object expected")
        cfg = entry.get("Config")
        tags = entry.get("RepoTags") or []
        layers = entry.get("Layers") or []
        if not isinstance(cfg, str) or not cfg:
            raise errors.InvalidArgument(f"{what}: missing Config")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise errors.InvalidArgument(f"{what}: RepoTags must be a list of strings")
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise errors.InvalidArgument(f"{what}: Layers must be a list of strings")
        out.append(DockerManifest(cfg, tuple(tags), tuple(layers)))
    return out


def docker_layer_media_type(head: bytes) -> str:
    """The media type containerd gives a docker-save layer, by its first bytes."""
    if head.startswith(_GZIP_MAGIC):
        return oci.DOCKER_LAYER_GZIP
    if head.startswith(_ZSTD_MAGIC):
        return oci.OCI_LAYER_ZSTD
    return oci.DOCKER_LAYER


def docker_manifest(config_desc: oci.Descriptor, layers: Sequence[oci.Descriptor]) -> bytes:
    """The Docker schema 2 manifest containerd's importer writes for a docker-save image."""
    return go_json(
        {
            "schemaVersion": 2,
            "mediaType": oci.DOCKER_MANIFEST,
            "config": descriptor_json(config_desc),
            "layers": [descriptor_json(d) for d in layers],
        }
    )


class Importer:
    """One import: read the stream, check everything, unpack, then create the images."""

    def __init__(
        self,
        stores: ImportStores,
        options: ImportOptions | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self._stores = stores
        self._store = stores.content
        self._opts = options or ImportOptions()
        self._report: Reporter = reporter or NullReporter()
        self._files: dict[str, _File] = {}
        self._links: dict[str, str] = {}
        self._meta: dict[str, bytes] = {}
        self._cache: dict[str, bytes] = {}  # digest -> bytes of small blobs (verified)
        self._cached = 0
        self._stored: dict[str, int] = {}  # digest -> size, in the store for this import
        self._pending: dict[str, _File] = {}  # digest -> a file held in memory
        self._walked: set[str] = set()

    async def run(self, stream: IO[bytes]) -> list[ImportedImage]:
        async with self._stores.lease(LEASE_TTL):
            await self.read(stream)
            tops = await self.index()
            named = image_names(
                tops,
                base_name=self._opts.base_name,
                digests=self._opts.digests,
                today=self._opts.today,
            )
            if not named:
                raise errors.InvalidArgument(
                    "the archive names no image (no io.containerd.image.name or "
                    "org.opencontainers.image.ref.name annotation); use --digests"
                )
            for i, desc in enumerate(tops):
                await self._walk(desc, f"image {i} of the archive")
            chains = await self._unpack(named) if self._opts.unpack else {}
            return [
                ImportedImage(name, desc, chains.get(desc.digest, ""))
                for name, desc in await self._create(named)
            ]

    # -- 1. the tar stream --

    async def read(self, stream: IO[bytes]) -> None:
        """Store the archive's blobs, keep its metadata files and docker-save files."""
        tf = await asyncio.to_thread(_open_tar, stream)
        while (member := await asyncio.to_thread(_next, tf)) is not None:
            await self._entry(tf, member)

    async def _entry(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        name = _clean(m.name)
        if m.issym():
            self._links[name] = _clean(posixpath.join(posixpath.dirname(name), m.linkname))
            return
        if m.islnk():
            self._links[name] = _clean(m.linkname)
            return
        if not m.isreg():
            return
        if m.size > self._opts.max_blob_bytes:
            raise errors.InvalidArgument(
                f"archive entry {name} is {m.size} bytes, over the limit of "
                f"{self._opts.max_blob_bytes} bytes"
            )
        if name in _META:
            if m.size > MAX_META:
                raise errors.InvalidArgument(
                    f"archive entry {name} is too large ({m.size} bytes, limit {MAX_META})"
                )
            self._meta[name] = await self._read_all(tf, m, name, report=False)
            return
        bm = _BLOB_PATH.match(name)
        if bm is not None:
            alg, enc = bm.groups()
            if alg != "sha256":
                raise errors.InvalidArgument(
                    f"archive entry {name}: unsupported digest algorithm {alg!r}"
                )
            if not _HEX64.match(enc):
                raise errors.InvalidArgument(f"archive entry {name}: not a sha256 digest")
            await self._blob(tf, m, name, f"sha256:{enc}")
        elif not _V1_METADATA.match(name):
            await self._blob(tf, m, name, "")

    async def _read_all(
        self, tf: tarfile.TarFile, m: tarfile.TarInfo, name: str, *, report: bool = True
    ) -> bytes:
        f = tf.extractfile(m)
        assert f is not None  # a regular file
        data = await asyncio.to_thread(_read, f, m.size, name)
        if report:
            self._report.blob(name, m.size, m.size)
        return data

    async def _blob(
        self, tf: tarfile.TarFile, m: tarfile.TarInfo, name: str, expected: str
    ) -> None:
        if m.size <= SMALL and self._cached + m.size <= CACHE_BUDGET:
            data = await self._read_all(tf, m, name)
            digest = oci.digest_of(data)
            if expected and digest != expected:
                raise _mismatch(name, expected, digest)
            f = _File(name, len(data), digest, data[:8], data)
            self._files[name] = f
            if expected:  # a blob of an OCI layout: store it now
                await self._store_file(f)
                if data.lstrip()[:1] == b"{":  # maybe an index or manifest: keep for the walk
                    self._cache[digest] = data
                    self._cached += len(data)
            else:  # a docker-save file: stored when a manifest names it
                self._pending.setdefault(digest, f)
                self._cached += len(data)
            return
        self._files[name] = await self._stream(tf, m, name, expected)

    async def _stream(
        self, tf: tarfile.TarFile, m: tarfile.TarInfo, name: str, expected: str
    ) -> _File:
        ref = f"tar-{name}"
        try:
            w = await content.open_writer(self._store, ref, m.size, expected)
        except errors.AlreadyExists:
            # The store has it (and now this namespace sees it): skip the bytes.
            info = await self._store.info(expected)
            self._stored[expected] = info.size
            self._report.blob(name, m.size, m.size)
            return _File(name, info.size, expected, b"")
        f = tf.extractfile(m)
        assert f is not None
        h = hashlib.sha256()
        head = b""
        done = 0
        try:
            if w.offset:
                await w.truncate(0)
            while done < m.size:
                chunk = await asyncio.to_thread(
                    _read, f, min(content.CHUNK, m.size - done), name, h
                )
                head = head or chunk[:8]
                await w.write(chunk)
                done += len(chunk)
                self._report.blob(name, done, m.size)
            digest = "sha256:" + h.hexdigest()
            if expected and digest != expected:
                raise _mismatch(name, expected, digest)
            with contextlib.suppress(errors.AlreadyExists):
                await w.commit(m.size, digest)
        except BaseException:
            await w.close()
            with contextlib.suppress(errors.SeacanError):
                await self._store.abort(ref)
            raise
        await w.close()
        self._stored[digest] = m.size
        if not done:
            self._report.blob(name, 0, 0)
        return _File(name, m.size, digest, head)

    async def _store_file(self, f: _File) -> None:
        if f.digest in self._stored:
            return
        assert f.data is not None
        await content.write_blob(
            self._store, f"tar-{f.name}", f.data, expected=f.digest, total=f.size
        )
        self._stored[f.digest] = f.size
        if self._pending.pop(f.digest, None) is not None:
            self._cached -= f.size
        f.data = None

    def _lookup(self, name: str) -> _File | None:
        name = _clean(name)
        for _ in range(32):
            f = self._files.get(name)
            if f is not None:
                return f
            if name not in self._links:
                return None
            name = self._links[name]
        return None

    # -- 2. the index --

    async def index(self) -> list[oci.Descriptor]:
        """The archive's top-level image descriptors (docker-save manifests written now)."""
        if "oci-layout" in self._meta:
            layout = self._meta["oci-layout"]
            try:
                version = json.loads(layout).get("imageLayoutVersion", "")
            except (ValueError, UnicodeDecodeError, AttributeError):
                raise errors.InvalidArgument("oci-layout: invalid JSON") from None
            if version != OCI_LAYOUT_VERSION:
                raise errors.InvalidArgument(f"unsupported OCI image layout version {version!r}")
            if "index.json" not in self._meta:
                raise errors.InvalidArgument("missing index.json in the OCI image layout")
        if "index.json" in self._meta:
            return list(oci.parse_index(self._meta["index.json"], "index.json").manifests)
        if "manifest.json" in self._meta:
            return await self._docker_index(parse_docker_manifest(self._meta["manifest.json"]))
        raise errors.InvalidArgument(
            "unrecognized image archive: no index.json (OCI image layout) "
            "and no manifest.json (docker save)"
        )

    async def _docker_file(self, path: str, what: str) -> _File:
        f = self._lookup(path)
        if f is None:
            raise errors.InvalidArgument(f"manifest.json: {what} {path} not found in the archive")
        if f.data is not None:
            await self._store_file(f)
        if not f.head and f.size:  # skipped as already stored: look at its first bytes there
            async for chunk in self._store.read(f.digest, 0, 8):
                f.head += chunk
        return f

    async def _docker_index(self, entries: Sequence[DockerManifest]) -> list[oci.Descriptor]:
        tops: list[oci.Descriptor] = []
        for i, entry in enumerate(entries):
            cfg = await self._docker_file(entry.config, f"config of entry {i}")
            layers = []
            for j, path in enumerate(entry.layers):
                f = await self._docker_file(path, f"layer {j} of entry {i}")
                layers.append(oci.Descriptor(docker_layer_media_type(f.head), f.digest, f.size))
            data = docker_manifest(oci.Descriptor(oci.DOCKER_CONFIG, cfg.digest, cfg.size), layers)
            desc = oci.Descriptor(oci.DOCKER_MANIFEST, oci.digest_of(data), len(data))
            await content.write_blob(
                self._store, f"manifest-{desc.digest}", data, expected=desc.digest
            )
            self._stored[desc.digest] = desc.size
            self._cache[desc.digest] = data
            if not entry.repo_tags:
                tops.append(desc)
            for tag in entry.repo_tags:
                try:
                    name = normalize_reference(tag)
                except errors.InvalidArgument as e:
                    raise errors.InvalidArgument(f"manifest.json: entry {i}: {e}") from None
                annotations = {oci.ANNOTATION_IMAGE_NAME: name}
                if ref := oci_ref_name(name):
                    annotations[oci.ANNOTATION_REF_NAME] = ref
                tops.append(replace(desc, annotations=annotations))
        return tops

    # -- 3. the walk: everything present, labels set --

    def _wanted(self, desc: oci.Descriptor) -> bool:
        return (
            self._opts.all_platforms
            or desc.platform is None
            or oci.platform_matches(self._opts.platform, desc.platform)
        )

    async def _present(self, desc: oci.Descriptor, what: str) -> None:
        size = self._stored.get(desc.digest)
        if size is None and desc.digest in self._pending:
            f = self._pending[desc.digest]
            await self._store_file(f)
            size = f.size
        if size is None:
            try:
                size = (await self._store.info(desc.digest)).size
            except errors.NotFound:
                raise errors.NotFound(
                    f"{what}: blob {desc.digest} is missing: not found in the archive "
                    "nor in the content store"
                ) from None
            self._stored[desc.digest] = size
        if size != desc.size:
            raise errors.InvalidArgument(
                f"{what}: blob {desc.digest} is {size} bytes, its descriptor says {desc.size}"
            )

    async def _json(self, desc: oci.Descriptor) -> bytes:
        data = self._cache.get(desc.digest)
        if data is not None:
            return data
        if desc.size > MAX_META:
            raise errors.InvalidArgument(f"{desc.digest} is too large for a {desc.media_type}")
        return await content.read_blob(self._store, desc.digest)

    async def _label(self, desc: oci.Descriptor, children: Sequence[oci.Descriptor]) -> None:
        labels = child_gc_labels(children)
        if labels:
            await self._store.update(
                content.Info(digest=desc.digest, size=desc.size, labels=labels),
                ["labels." + k for k in labels],
            )

    async def _walk(self, desc: oci.Descriptor, what: str) -> None:
        if desc.digest in self._walked:
            return
        self._walked.add(desc.digest)
        await self._present(desc, what)
        if desc.media_type in oci.INDEX_TYPES:
            index = oci.parse_index(await self._json(desc), f"index {desc.digest}")
            children = [c for c in index.manifests if self._wanted(c)]
            await self._label(desc, children)
            for c in children:
                await self._walk(c, f"index {desc.digest}")
        elif desc.media_type in oci.MANIFEST_TYPES:
            m = oci.parse_manifest(await self._json(desc), f"manifest {desc.digest}")
            await self._present(m.config, f"config of manifest {desc.digest}")
            for i, layer in enumerate(m.layers):
                await self._present(layer, f"layer {i} of manifest {desc.digest}")
            await self._label(desc, [m.config, *m.layers])

    # -- 4. unpack, 5. image records --

    async def _unpack(self, named: Sequence[tuple[str, oci.Descriptor]]) -> dict[str, str]:
        chains: dict[str, str] = {}
        for name, desc in named:
            if desc.digest in chains:
                self._report.unpacking(name, desc)
                self._report.unpacked(name, desc, chains[desc.digest])
                continue
            try:
                await unpacker.resolve_manifest(self._store, desc, self._opts.platform)
            except errors.NotFound as e:
                if not self._opts.all_platforms:
                    raise errors.NotFound(
                        f"image {name}: {e}; use --all-platforms to import it without unpacking"
                    ) from None
                self._report.note(f"{name}: not unpacked: {e}")
                chains[desc.digest] = ""
                continue
            self._report.unpacking(name, desc)
            done = await unpacker.unpack(
                self._store,
                self._stores.snapshots,
                self._stores.diff,
                desc,
                platform=self._opts.platform,
                snapshotter=self._opts.snapshotter,
                reporter=self._report,
            )
            chains[desc.digest] = done.chain_id
            self._report.unpacked(name, desc, done.chain_id)
        return chains

    async def _create(
        self, named: Sequence[tuple[str, oci.Descriptor]]
    ) -> list[tuple[str, oci.Descriptor]]:
        for name, desc in named:
            image = Image(name=name, labels={}, target=desc)
            try:
                await self._stores.images.create(image)
            except errors.AlreadyExists:
                await self._stores.images.update(image, ["target"])
        return list(named)


async def import_archive(
    stores: ImportStores,
    stream: IO[bytes],
    options: ImportOptions | None = None,
    reporter: Reporter | None = None,
) -> list[ImportedImage]:
    """Import an OCI layout or docker-save archive (plain or gzip); see the module doc."""
    return await Importer(stores, options, reporter).run(stream)


# --- export ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportOptions:
    # Only these platforms' manifests (ctr --platform); empty: see all_platforms.
    platforms: tuple[oci.Platform, ...] = ()
    # Every manifest, each must be present. Neither set: every manifest whose
    # blobs are all in the store (the others are left out, quietly).
    all_platforms: bool = False
    manifest_json: bool = True  # the docker-compatible manifest.json


@dataclass(slots=True)
class _ExportPlan:
    blobs: dict[str, oci.Descriptor] = field(default_factory=dict)
    index: list[oci.Descriptor] = field(default_factory=list)
    # manifest digest -> (config digest, layer digests, names): manifest.json entries
    docker: dict[str, tuple[str, list[str], list[str]]] = field(default_factory=dict)


class ExportReporter(Protocol):
    def blob(self, name: str, done: int, total: int) -> None: ...


class Exporter:
    def __init__(
        self,
        provider: content.Provider,
        options: ExportOptions | None = None,
        reporter: ExportReporter | None = None,
    ) -> None:
        self._provider = provider
        self._opts = options or ExportOptions()
        self._report: ExportReporter = reporter or NullReporter()
        self._plan = _ExportPlan()
        self._have: dict[str, bool] = {}

    async def _exists(self, desc: oci.Descriptor) -> bool:
        if desc.digest not in self._have:
            try:
                info = await self._provider.info(desc.digest)
                self._have[desc.digest] = info.size == desc.size
            except errors.NotFound:
                self._have[desc.digest] = False
        return self._have[desc.digest]

    async def _require(self, desc: oci.Descriptor, what: str) -> None:
        if not await self._exists(desc):
            raise errors.NotFound(f"{what}: blob {desc.digest} not found in the content store")

    async def _read_json(self, desc: oci.Descriptor) -> bytes:
        if desc.size > MAX_META:
            raise errors.InvalidArgument(f"{desc.digest} is too large for a {desc.media_type}")
        return await content.read_blob(self._provider, desc.digest)

    async def _manifest(self, desc: oci.Descriptor, strict: bool, what: str) -> bool:
        """Plan a manifest with its config and layers; False (nothing planned) if one is
        missing and not ``strict``."""
        if not await self._exists(desc):
            if strict:
                await self._require(desc, what)
            return False
        m = oci.parse_manifest(await self._read_json(desc), f"manifest {desc.digest}")
        children = [m.config, *m.layers]
        for child in children:
            if not await self._exists(child):
                if strict:
                    await self._require(child, f"manifest {desc.digest}")
                return False
        for d in [desc, *children]:
            self._plan.blobs.setdefault(d.digest, d)
        return True

    def _platform_wanted(self, p: oci.Platform | None) -> bool | None:
        """True/False when options decide; None when presence decides (the default)."""
        if self._opts.all_platforms:
            return True
        if self._opts.platforms:
            return p is None or any(oci.platform_matches(w, p) for w in self._opts.platforms)
        return None

    async def _index(self, desc: oci.Descriptor, depth: int) -> list[oci.Descriptor]:
        """Plan an index and the manifests wanted; returns those manifests."""
        if depth > 4:
            raise errors.InvalidArgument(f"index {desc.digest}: indexes nested too deep")
        await self._require(desc, "index")
        index = oci.parse_index(await self._read_json(desc), f"index {desc.digest}")
        self._plan.blobs.setdefault(desc.digest, desc)
        included: list[oci.Descriptor] = []
        for child in index.manifests:
            wanted = self._platform_wanted(child.platform)
            if wanted is False:
                continue
            strict = wanted is True
            if child.media_type in oci.INDEX_TYPES:
                included += await self._index(child, depth + 1)
            elif child.media_type in oci.MANIFEST_TYPES:
                if await self._manifest(child, strict, f"index {desc.digest}"):
                    included.append(child)
            elif await self._exists(child):
                self._plan.blobs.setdefault(child.digest, child)
            elif strict:
                await self._require(child, f"index {desc.digest}")
        return included

    async def _docker_entry(self, manifest: oci.Descriptor, name: str) -> None:
        entry = self._plan.docker.get(manifest.digest)
        if entry is None:
            m = oci.parse_manifest(await self._read_json(manifest), f"manifest {manifest.digest}")
            entry = (m.config.digest, [d.digest for d in m.layers], [])
            self._plan.docker[manifest.digest] = entry
        try:
            ref = parse_reference(name)
        except errors.InvalidArgument:
            return  # not a docker name: manifest.json cannot carry it
        if ref.tag and not ref.digest:
            familiar = ref.familiar()
            if familiar not in entry[2]:
                entry[2].append(familiar)

    async def add(self, name: str, target: oci.Descriptor) -> None:
        """Plan one image: its target (named in index.json) and the blobs under it."""
        annotations = dict(target.annotations)
        annotations[oci.ANNOTATION_IMAGE_NAME] = name
        if ref := oci_ref_name(name):
            annotations[oci.ANNOTATION_REF_NAME] = ref
        else:
            annotations.pop(oci.ANNOTATION_REF_NAME, None)
        self._plan.index.append(replace(target, annotations=annotations))
        what = f"image {name}"
        if target.media_type in oci.MANIFEST_TYPES:
            await self._manifest(target, True, what)
            manifests = [target]
        elif target.media_type in oci.INDEX_TYPES:
            manifests = await self._index(target, 0)
            host = oci.host_platform()
            best = [d for d in manifests if d.platform and oci.platform_matches(host, d.platform)]
            manifests = (best or manifests)[:1]
        else:
            await self._require(target, what)
            self._plan.blobs.setdefault(target.digest, target)
            manifests = []
        if self._opts.manifest_json:
            for m in manifests:
                await self._docker_entry(m, name)

    def _records(self) -> list[tuple[str, bytes | oci.Descriptor | None]]:
        index = {
            "schemaVersion": 2,
            "mediaType": oci.OCI_INDEX,
            "manifests": [descriptor_json(d) for d in self._plan.index],
        }
        records: list[tuple[str, bytes | oci.Descriptor | None]] = [
            ("blobs/", None),
            ("blobs/sha256/", None),
            ("index.json", go_json(index)),
            ("oci-layout", go_json({"imageLayoutVersion": OCI_LAYOUT_VERSION})),
        ]
        if self._opts.manifest_json and self._plan.docker:
            mfsts = [
                {
                    "Config": "blobs/sha256/" + cfg.split(":", 1)[1],
                    "RepoTags": names or None,
                    "Layers": ["blobs/sha256/" + d.split(":", 1)[1] for d in layers],
                }
                for cfg, layers, names in self._plan.docker.values()
            ]
            records.append(("manifest.json", go_json(mfsts)))
        for digest, desc in self._plan.blobs.items():
            records.append(("blobs/sha256/" + digest.split(":", 1)[1], desc))
        records.sort(key=lambda r: r[0])
        return records

    async def write(self, out: IO[bytes]) -> None:
        """Write the planned archive to ``out`` (entries sorted by name, mtime 0)."""
        for name, item in self._records():
            if item is None:
                await asyncio.to_thread(out.write, _tar_header(name, 0, tarfile.DIRTYPE, 0o755))
            elif isinstance(item, bytes):
                await asyncio.to_thread(
                    out.write, _tar_header(name, len(item), tarfile.REGTYPE, 0o644)
                )
                await asyncio.to_thread(out.write, item + _padding(len(item)))
            else:
                await self._write_blob(out, name, item)
        await asyncio.to_thread(out.write, b"\0" * (2 * tarfile.BLOCKSIZE))
        await asyncio.to_thread(out.flush)

    async def _write_blob(self, out: IO[bytes], name: str, desc: oci.Descriptor) -> None:
        await asyncio.to_thread(out.write, _tar_header(name, desc.size, tarfile.REGTYPE, 0o444))
        done = 0
        async for chunk in self._provider.read(desc.digest):
            done += len(chunk)
            if done > desc.size:
                break
            await asyncio.to_thread(out.write, chunk)
            self._report.blob(name, done, desc.size)
        if done != desc.size:
            raise errors.Internal(
                f"blob {desc.digest} changed while it was exported: "
                f"read {done} bytes, expected {desc.size}"
            )
        await asyncio.to_thread(out.write, _padding(desc.size))


def _tar_header(name: str, size: int, type_: bytes, mode: int) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.type = type_
    ti.mode = mode
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


async def export_archive(
    provider: content.Provider,
    images: Sequence[tuple[str, oci.Descriptor]],
    out: IO[bytes],
    options: ExportOptions | None = None,
    reporter: ExportReporter | None = None,
) -> None:
    """Write ``images`` (name, target) as an OCI layout archive with a docker manifest.json.

    Everything is checked before the first byte is written; NotFound names a
    blob the options require and the store does not have.
    """
    exporter = Exporter(provider, options, reporter)
    for name, target in images:
        await exporter.add(name, target)
    await exporter.write(out)


__all__ = [
    "LEASE_TTL",
    "DockerManifest",
    "ExportOptions",
    "Exporter",
    "ImportOptions",
    "ImportStores",
    "ImportedImage",
    "Importer",
    "NullReporter",
    "Reference",
    "Reporter",
    "child_gc_labels",
    "default_base_name",
    "descriptor_json",
    "docker_layer_media_type",
    "docker_manifest",
    "export_archive",
    "familiar_reference",
    "go_json",
    "image_names",
    "import_archive",
    "normalize_reference",
    "oci_ref_name",
    "parse_docker_manifest",
    "parse_reference",
    "translate_ref_name",
]
