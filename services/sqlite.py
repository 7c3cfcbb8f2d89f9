"""The one way a service opens its SQLite database (SQLAlchemy, WAL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

BUSY_TIMEOUT_MS = 5000


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()


def open_engine(path: Path, metadata: sa.MetaData) -> sa.Engine:
    """An engine on ``path`` in WAL mode with a busy timeout; tables created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{path}")
    sa.event.listen(engine, "connect", _on_connect)
    metadata.create_all(engine)
    return engine
