"""Garbage collection planning, without I/O: mark from the roots, sweep in a safe order.

This is containerd's ``metadata/gc.go`` as a pure function. The collector
(``seacan.services.metadata.collector``) gathers an :class:`Inventory` for a
namespace, calls :func:`plan`, and performs the :class:`Plan`.

What keeps an object alive (the roots):

- a :class:`Root` from a root source: an image (its target, and the
  ``gc.ref.*`` labels on the image), later a container;
- a resource of a lease that has not expired (``containerd.io/gc.expire``,
  RFC 3339, in the past means expired). A lease labelled
  ``containerd.io/gc.flat`` protects only its resources and their snapshot
  parents, not what their labels reference;
- any content or snapshot labelled ``containerd.io/gc.root``.

What else an object keeps alive (the edges):

- labels ``containerd.io/gc.ref.content`` and ``containerd.io/gc.ref.content.<x>``
  (or ``/<x>``) name a digest; labels ``containerd.io/gc.ref.snapshot.<snapshotter>``
  (optionally ``/<x>``) name a snapshot key; on content, snapshots and roots;
- a snapshot keeps its parent.

Everything else that exists is removed: snapshots children first (a parent is
skipped when a child could not be removed), then content. Expired leases are
removed before anything else. Worked example::

    inv = Inventory("default",
        objects=(Object(Ref(CONTENT, "sha256:m"), {"containerd.io/gc.ref.content.l.0": "sha256:l"}),
                 Object(Ref(CONTENT, "sha256:l")), Object(Ref(CONTENT, "sha256:old"))),
        roots=(Root("image busybox", (Ref(CONTENT, "sha256:m"),)),))
    plan(inv, now).removals   # -> (Removal("default", Ref(CONTENT, "sha256:old")),)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

CONTENT = "content"
INGESTS = "ingests"
LEASES = "leases"
SNAPSHOTS_PREFIX = "snapshots/"

LABEL_ROOT = "containerd.io/gc.root"
LABEL_REF_CONTENT = "containerd.io/gc.ref.content"
LABEL_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot."
LABEL_EXPIRE = "containerd.io/gc.expire"
LABEL_FLAT = "containerd.io/gc.flat"


def snapshots_type(snapshotter: str) -> str:
    """The resource type of a snapshotter's snapshots: ``snapshots/overlayfs``."""
    return SNAPSHOTS_PREFIX + snapshotter


@dataclass(frozen=True, slots=True, order=True)
class Ref:
    """Names an object in a namespace: ``Ref("content", "sha256:...")``,
    ``Ref("snapshots/overlayfs", "<key>")``, ``Ref("leases", "<id>")``."""

    type: str
    id: str

    @property
    def is_snapshot(self) -> bool:
        return self.type.startswith(SNAPSHOTS_PREFIX)


@dataclass(frozen=True, slots=True)
class Object:
    """A content blob or snapshot that exists. ``parent`` is a snapshot's parent key."""

    ref: Ref
    labels: Mapping[str, str] = field(default_factory=dict)
    parent: str = ""


@dataclass(frozen=True, slots=True)
class Lease:
    id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    resources: tuple[Ref, ...] = ()

    def expired(self, now: datetime) -> bool:
        """True when ``containerd.io/gc.expire`` is a valid time before ``now``."""
        at = parse_expire(self.labels.get(LABEL_EXPIRE, ""))
        return at is not None and at < now

    @property
    def flat(self) -> bool:
        return LABEL_FLAT in self.labels


@dataclass(frozen=True, slots=True)
class Root:
    """Something that keeps objects alive; ``what`` names it in logs (``image x``)."""

    what: str
    refs: tuple[Ref, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Inventory:
    """Everything the collector saw in one namespace."""

    namespace: str
    objects: tuple[Object, ...] = ()
    leases: tuple[Lease, ...] = ()
    roots: tuple[Root, ...] = ()


@dataclass(frozen=True, slots=True)
class Removal:
    """Remove ``ref`` unless one of ``after`` (its snapshot children) failed."""

    namespace: str
    ref: Ref
    after: frozenset[Ref] = frozenset()


@dataclass(frozen=True, slots=True)
class Removed:
    """What a collection removed (or, on a dry run, would remove)."""

    namespace: str
    type: str
    id: str


@dataclass(frozen=True, slots=True)
class Plan:
    namespace: str
    expired_leases: tuple[str, ...]
    marked: frozenset[Ref]
    removals: tuple[Removal, ...]

    def removed(self) -> list[Removed]:
        """Everything the plan would remove: expired leases, then the removals."""
        out = [Removed(self.namespace, LEASES, lid) for lid in self.expired_leases]
        out.extend(Removed(self.namespace, r.ref.type, r.ref.id) for r in self.removals)
        return out


def parse_expire(value: str) -> datetime | None:
    """An RFC 3339 time (``2024-05-01T10:00:00Z``), or None when unset or invalid."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def label_refs(labels: Mapping[str, str]) -> Iterator[Ref]:
    """The objects that ``gc.ref.*`` labels point at."""
    for key, value in sorted(labels.items()):
        if key == LABEL_REF_CONTENT or (
            key.startswith(LABEL_REF_CONTENT) and key[len(LABEL_REF_CONTENT)] in "./"
        ):
            yield Ref(CONTENT, value)
        elif key.startswith(LABEL_REF_SNAPSHOT):
            snapshotter = key[len(LABEL_REF_SNAPSHOT) :].split("/", 1)[0]
            if snapshotter:
                yield Ref(snapshots_type(snapshotter), value)


def mark(inv: Inventory, now: datetime) -> frozenset[Ref]:
    """Every object reachable from a root (existing or not)."""
    index = {o.ref: o for o in inv.objects}
    # (ref, flat): a flat visit follows only snapshot parents, so an object
    # first reached flat is visited again when reached through a normal edge.
    todo: list[tuple[Ref, bool]] = []
    for lease in inv.leases:
        if not lease.expired(now):
            todo.extend((r, lease.flat) for r in lease.resources)
    for root in inv.roots:
        todo.extend((r, False) for r in (*root.refs, *label_refs(root.labels)))
    todo.extend((o.ref, False) for o in inv.objects if LABEL_ROOT in o.labels)

    seen: set[tuple[Ref, bool]] = set()
    while todo:
        ref, flat = todo.pop()
        if (ref, flat) in seen:
            continue
        seen.add((ref, flat))
        obj = index.get(ref)
        if obj is None:
            continue  # a dead edge, or a resource type the sweep never touches
        if ref.is_snapshot and obj.parent:
            todo.append((Ref(ref.type, obj.parent), flat))
        if not flat:
            todo.extend((r, False) for r in label_refs(obj.labels))
    return frozenset(ref for ref, _ in seen)


def _depth(obj: Object, index: Mapping[Ref, Object]) -> int:
    depth, seen = 0, {obj.ref}
    while obj.parent:
        parent = index.get(Ref(obj.ref.type, obj.parent))
        if parent is None or parent.ref in seen:
            break
        seen.add(parent.ref)
        obj, depth = parent, depth + 1
    return depth


def plan(inv: Inventory, now: datetime) -> Plan:
    """What to remove from ``inv.namespace``, in a safe order."""
    marked = mark(inv, now)
    index = {o.ref: o for o in inv.objects}
    garbage = [o for o in inv.objects if o.ref not in marked]

    snaps = [o for o in garbage if o.ref.is_snapshot]
    children: dict[Ref, set[Ref]] = {o.ref: set() for o in snaps}
    for o in snaps:
        parent = Ref(o.ref.type, o.parent)
        if o.parent and parent in children:
            children[parent].add(o.ref)
    snaps.sort(key=lambda o: (-_depth(o, index), o.ref))

    removals = [Removal(inv.namespace, o.ref, frozenset(children[o.ref])) for o in snaps]
    removals += [
        Removal(inv.namespace, o.ref)
        for o in sorted(garbage, key=lambda o: o.ref)
        if o.ref.type == CONTENT
    ]
    expired = tuple(sorted(lease.id for lease in inv.leases if lease.expired(now)))
    return Plan(inv.namespace, expired, marked, tuple(removals))


class Sweep:
    """Outcomes during a sweep, so that one failure never stops it.

    The executor asks :meth:`skip` before each removal (True when a child it
    depends on failed; the removal then counts as failed too) and reports
    each attempt with :meth:`record`.
    """

    def __init__(self) -> None:
        self.failed: set[Ref] = set()
        self.removed: list[Ref] = []

    def skip(self, removal: Removal) -> bool:
        if removal.after & self.failed:
            self.failed.add(removal.ref)
            return True
        return False

    def record(self, removal: Removal, ok: bool) -> None:
        if ok:
            self.removed.append(removal.ref)
        else:
            self.failed.add(removal.ref)


__all__ = [
    "CONTENT",
    "INGESTS",
    "LABEL_EXPIRE",
    "LABEL_FLAT",
    "LABEL_REF_CONTENT",
    "LABEL_REF_SNAPSHOT",
    "LABEL_ROOT",
    "LEASES",
    "SNAPSHOTS_PREFIX",
    "Inventory",
    "Lease",
    "Object",
    "Plan",
    "Ref",
    "Removal",
    "Removed",
    "Root",
    "Sweep",
    "label_refs",
    "mark",
    "parse_expire",
    "plan",
    "snapshots_type",
]
