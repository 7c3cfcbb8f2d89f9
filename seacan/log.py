"""structlog, configured once, in entry points only.

structlog (and rich, which it loads when installed) is imported on first use,
not with this module: a CLI command that logs nothing never pays for it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import structlog.typing

# configure(..., lazy=True) before structlog is loaded: applied on first use.
_pending: tuple[str, bool] | None = None


class _Stderr:
    """Whatever ``sys.stderr`` is at write time (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "info", *, json: bool = True, lazy: bool = False) -> None:
    """JSON lines on stderr for daemons; readable console output for the CLI.

    ``lazy``: do not import structlog now; configure it when something logs.
    """
    global _pending
    if lazy and "structlog" not in sys.modules:
        _pending = (level, json)
        return
    _pending = None
    _apply(level, json)


def _apply(level: str, json: bool) -> None:
    import structlog

    lvl = _level(level)
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


# logging's numeric levels (stable since Python 2), without importing logging.
_LEVELS = {
    "debug": 10,
    "info": 20,
    "warning": 30,
    "warn": 30,
    "error": 40,
    "exception": 40,
    "critical": 50,
    "fatal": 50,
    "notset": 0,
}


def _level(name: str) -> int:
    return _LEVELS.get(name.lower(), 20)


def _drop(*args: Any, **kwargs: Any) -> None:
    return None


class _Deferred:
    """A logger that imports structlog when first used."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        global _pending
        logger = self._logger
        if logger is None:
            if _pending is not None and _LEVELS.get(attr, 100) < _level(_pending[0]):
                return _drop  # below the configured level: no need to load structlog
            import structlog

            if _pending is not None:
                level, json = _pending
                _pending = None
                _apply(level, json)
            logger = self._logger = structlog.get_logger(self._name)
        return getattr(logger, attr)


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    return cast("structlog.typing.FilteringBoundLogger", _Deferred(name))
