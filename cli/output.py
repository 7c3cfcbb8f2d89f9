"""How the seacan command prints: tables, sizes, ages, JSON and progress.

Tables are aligned like Go's tabwriter (UPPERCASE headers, columns padded
to the widest cell); sizes are ctr's (``2.1 MiB``); ages are docker's
(``About a minute``). Progress redraws one line on a terminal and prints
plain lines when piped.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

from seacan import oci

PADDING = 3
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def human_size(n: int) -> str:
    """ctr's progress.Bytes: ``%02.1f`` in binary units (``0.0 B``, ``2.1 MiB``)."""
    size, i = float(n), 0
    while size >= 1024.0 and i < len(_UNITS) - 1:
        size /= 1024.0
        i += 1
    return f"{size:02.1f} {_UNITS[i]}"


def human_duration(seconds: float) -> str:
    """docker's units.HumanDuration: ``Less than a second`` ... ``3 years``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def age(at: datetime | None, now: datetime | None = None) -> str:
    if at is None:
        return "-"
    return human_duration(((now or datetime.now(UTC)) - at).total_seconds())


def labels_text(labels: Mapping[str, str]) -> str:
    """``k=v,k2=v2`` sorted by key; ``-`` when there are none (as ctr)."""
    if not labels:
        return "-"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Aligned columns, headers upper-cased; trailing blanks stripped."""
    all_rows = [[h.upper() for h in headers], *([str(c) for c in r] for r in rows)]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers))]
    lines = []
    for r in all_rows:
        cells = [c.ljust(w + PADDING) for c, w in zip(r[:-1], widths[:-1], strict=True)]
        lines.append(("".join(cells) + r[-1]).rstrip())
    return "\n".join(lines) + "\n"


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, datetime):
        return obj.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(obj, enum.Enum):
        return obj.name.lower()
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def to_json(obj: Any) -> str:
    """Indented JSON; dataclasses become objects, times RFC 3339 UTC."""
    return json.dumps(_plain(obj), indent=2, ensure_ascii=False) + "\n"


def descriptor(d: oci.Descriptor) -> dict[str, Any]:
    """A descriptor as OCI JSON (``mediaType``, ``digest``, ``size``, ...)."""
    return d.to_json()


class Progress:
    """The import/export reporter: a redrawn line on a terminal, plain lines when piped.

    ``stream`` gets the progress; ``results`` gets what the command reports
    (``unpacking NAME (DIGEST)...done``), as ctr prints it.
    """

    def __init__(
        self, stream: TextIO, results: TextIO | None = None, *, tty: bool | None = None
    ) -> None:
        self._out = stream
        self._results = results or stream
        self._tty = stream.isatty() if tty is None else tty
        self._last = 0.0
        self._line = False
        self._quiet_plain = False

    def quiet_when_piped(self) -> Progress:
        """No per-blob lines when piped (export prints no progress to a pipe)."""
        self._quiet_plain = True
        return self

    def _clear(self) -> None:
        if self._line:
            self._out.write("\r\x1b[K")
            self._out.flush()
            self._line = False

    def _draw(self, text: str) -> None:
        width = shutil.get_terminal_size((80, 24)).columns - 1
        if len(text) > width:
            text = text[: max(width - 1, 0)] + "…"
        self._out.write("\r\x1b[K" + text)
        self._out.flush()
        self._line = True

    def blob(self, name: str, done: int, total: int) -> None:
        short = name.replace("blobs/sha256/", "sha256:")
        if len(short) > 19 and short.startswith("sha256:"):
            short = short[:19]
        if self._tty:
            now = time.monotonic()
            if done < total and now - self._last < 0.1:
                return
            self._last = now
            self._draw(f"{short}: {human_size(done)} / {human_size(total)}")
        elif done >= total and not self._quiet_plain:
            self._out.write(f"{name}: done ({human_size(total)})\n")
            self._out.flush()

    def layer(self, index: int, count: int, desc: oci.Descriptor, applied: bool) -> None:
        if self._tty:
            self._draw(
                f"layer {index + 1}/{count} {desc.digest[:19]} "
                f"{'applied' if applied else 'already unpacked'}"
            )

    def unpacking(self, name: str, target: oci.Descriptor) -> None:
        self._clear()
        self._results.write(f"unpacking {name} ({target.digest})...")
        self._results.flush()

    def unpacked(self, name: str, target: oci.Descriptor, chain_id: str) -> None:
        self._clear()
        if self._tty and self._results is self._out:
            # The layer lines overwrote the "unpacking" line: write it again.
            self._results.write(f"unpacking {name} ({target.digest})...")
        self._results.write("done\n")
        self._results.flush()

    def note(self, message: str) -> None:
        self._clear()
        print(f"seacan: {message}", file=sys.stderr)

    def finish(self) -> None:
        self._clear()


_T = TypeVar("_T")


async def each(items: Iterable[_T], act: Callable[[_T], Awaitable[None]]) -> int:
    """``act`` on every item, as docker's ``rm a b c``: a failure is printed as
    ``seacan: <message>`` and the rest still run; 1 if any failed, else 0."""
    from seacan import errors

    code = 0
    for item in items:
        try:
            await act(item)
        except errors.SeacanError as e:
            print(f"seacan: {e}", file=sys.stderr)
            code = 1
    return code
