"""Daemon configuration: where things live, read once from flags and TOML.

Every path the system owns derives from ``root`` and ``state`` here, so tests
can run a daemon in a private directory (see docs/dir.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from seacan import address, errors

DEFAULT_ROOT = Path("/var/lib/seacan")
DEFAULT_STATE = Path(address.DEFAULT_STATE)
DEFAULT_CONFIG = Path("/etc/seacan/config.toml")
DEFAULT_SNAPSHOTTER = "overlayfs"

# The services seacand starts, in start order.
SERVICES = (
    "metadata",
    "content",
    "snapshots",
    "images",
    "containers",
    "tasks",
    "volumes",
    "networking",
    "engine",
    "build",
)
DEFAULT_CONFIG_DIR = Path("/etc/seacan")
# Where CNI plugins are looked for, in order (Debian puts them in /usr/lib/cni).
DEFAULT_CNI_PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits that protect the host from hostile input."""

    # A layer that expands past this many bytes is refused (decompression bombs).
    max_layer_bytes: int = 64 << 30
    # An archive entry or blob larger than this is refused.
    max_blob_bytes: int = 64 << 30
    # A build context (the tar stream ``seacan build`` sends) larger than this is refused.
    max_context_bytes: int = 4 << 30


@dataclass(frozen=True, slots=True)
class Config:
    root: Path = DEFAULT_ROOT
    state: Path = DEFAULT_STATE
    address: Path = DEFAULT_STATE / "seacan.sock"
    log_level: str = "info"
    limits: Limits = field(default_factory=Limits)
    # Seconds between periodic garbage collections (0 disables the timer).
    gc_interval: float = 300.0
    # User configuration seacan owns: network conflists (networks/), registry
    # certificates (certs.d/).
    config_dir: Path = DEFAULT_CONFIG_DIR
    cni_plugin_dirs: tuple[str, ...] = DEFAULT_CNI_PLUGIN_DIRS

    def service_socket(self, service: str) -> Path:
        return self.state / "sockets" / f"{service}.sock"

    def service_root(self, service: str) -> Path:
        return self.root / service

    def to_args(self) -> list[str]:
        """Flags that rebuild this config in a child service process."""
        return [
            "--root",
            str(self.root),
            "--state",
            str(self.state),
            "--address",
            str(self.address),
            "--log-level",
            self.log_level,
            "--max-layer-bytes",
            str(self.limits.max_layer_bytes),
            "--max-blob-bytes",
            str(self.limits.max_blob_bytes),
            "--gc-interval",
            str(self.gc_interval),
            "--max-context-bytes",
            str(self.limits.max_context_bytes),
            "--config-dir",
            str(self.config_dir),
            "--cni-plugin-dirs",
            ":".join(self.cni_plugin_dirs),
        ]


def load(
    config_file: Path | None = None,
    *,
    root: str | None = None,
    state: str | None = None,
    address: str | None = None,
    log_level: str | None = None,
    max_layer_bytes: int | None = None,
    max_blob_bytes: int | None = None,
    gc_interval: float | None = None,
    max_context_bytes: int | None = None,
    config_dir: str | None = None,
    cni_plugin_dirs: str | None = None,
) -> Config:
    """Defaults, then the TOML file, then flags; paths made absolute."""
    cfg = Config()
    path = config_file
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    if path is not None:
        cfg = _apply_toml(cfg, path)
    limits = cfg.limits
    if max_layer_bytes is not None:
        limits = replace(limits, max_layer_bytes=max_layer_bytes)
    if max_blob_bytes is not None:
        limits = replace(limits, max_blob_bytes=max_blob_bytes)
    if max_context_bytes is not None:
        limits = replace(limits, max_context_bytes=max_context_bytes)
    new_state = Path(state).absolute() if state else cfg.state
    new_address = (
        Path(address).absolute()
        if address
        else (cfg.address if cfg.state == new_state else new_state / "seacan.sock")
    )
    return replace(
        cfg,
        root=Path(root).absolute() if root else cfg.root,
        state=new_state,
        address=new_address,
        log_level=log_level or cfg.log_level,
        limits=limits,
        gc_interval=cfg.gc_interval if gc_interval is None else gc_interval,
        config_dir=Path(config_dir).absolute() if config_dir else cfg.config_dir,
        cni_plugin_dirs=(
            tuple(d for d in cni_plugin_dirs.split(":") if d)
            if cni_plugin_dirs
            else cfg.cni_plugin_dirs
        ),
    )


def _apply_toml(cfg: Config, path: Path) -> Config:
    import tomllib  # here: the CLI never reads a config file

    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise errors.NotFound(f"config file {path} not found") from e
    except tomllib.TOMLDecodeError as e:
        raise errors.InvalidArgument(f"config file {path}: {e}") from e
    known = {
        "root",
        "state",
        "address",
        "log_level",
        "limits",
        "gc_interval",
        "config_dir",
        "cni_plugin_dirs",
    }
    unknown = set(data) - known
    if unknown:
        raise errors.InvalidArgument(f"config file {path}: unknown keys {sorted(unknown)}")
    limits = cfg.limits
    lim = data.get("limits", {})
    if lim:
        limits = Limits(
            max_layer_bytes=int(lim.get("max_layer_bytes", limits.max_layer_bytes)),
            max_blob_bytes=int(lim.get("max_blob_bytes", limits.max_blob_bytes)),
            max_context_bytes=int(lim.get("max_context_bytes", limits.max_context_bytes)),
        )
    state = Path(data["state"]) if "state" in data else cfg.state
    return replace(
        cfg,
        root=Path(data.get("root", cfg.root)),
        state=state,
        address=Path(data.get("address", state / "seacan.sock")),
        log_level=str(data.get("log_level", cfg.log_level)),
        limits=limits,
        gc_interval=float(data.get("gc_interval", cfg.gc_interval)),
        config_dir=Path(data.get("config_dir", cfg.config_dir)),
        cni_plugin_dirs=tuple(data.get("cni_plugin_dirs", cfg.cni_plugin_dirs)),
    )


def env_address() -> str:
    return address.from_env()
