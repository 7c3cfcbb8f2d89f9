"""Network namespaces and links: the one module that uses pyroute2.

Namespaces live as bind-mounted nsfs files in a private directory
(``<state>/netns/``), never in ``/run/netns``, so ``ip netns`` of other
tools and other daemons never see (or remove) seacan's.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from seacan import errors, mount
from seacan.snapshots import Mount

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _in_new_netns(path: Path, failure: list[BaseException]) -> None:
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:  # this thread only
            err = ctypes.get_errno()
            raise errors.Internal(f"unshare(CLONE_NEWNET): {os.strerror(err).lower()}")
        own = f"/proc/self/task/{threading.get_native_id()}/ns/net"
        mount.mount(Mount(type="none", source=own, options=("bind",)), path)
        with IPRoute() as ipr:  # a netlink socket of the new namespace
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    except BaseException as e:  # reported to the caller's thread
        failure.append(e)


def create_netns(path: Path) -> None:
    """A new network namespace pinned at ``path`` with loopback up. Idempotent."""
    if is_netns(path):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    failure: list[BaseException] = []
    # A thread of its own: the unshare must not leave any pool thread in the new netns.
    t = threading.Thread(target=_in_new_netns, args=(path, failure), name="netns-create")
    t.start()
    t.join()
    if failure:
        delete_netns(path)
        e = failure[0]
        if isinstance(e, errors.SeacanError):
            raise e
        raise errors.Internal(f"create network namespace {path}: {e}")


def is_netns(path: Path) -> bool:
    """Whether ``path`` is a pinned network namespace (an nsfs mount)."""
    try:
        st, parent = path.stat(), path.parent.stat()
    except OSError:
        return False
    return st.st_dev != parent.st_dev


def delete_netns(path: Path) -> None:
    """Unpin and remove; a missing namespace is not an error."""
    with contextlib.suppress(errors.SeacanError):
        mount.unmount(path, lazy=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def link_exists(name: str) -> bool:
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def delete_link(name: str) -> bool:
    """Delete the host link ``name``; False when there was none."""
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return False
        try:
            ipr.link("del", index=idx[0])
        except NetlinkError as e:
            if e.code == 19:  # ENODEV: gone meanwhile
                return False
            raise errors.Internal(f"delete link {name}: {e}") from e
    return True


def links(prefix: str = "") -> list[str]:
    with IPRoute() as ipr:
        names = [str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()]
    return [n for n in names if n.startswith(prefix)]


def routed_networks() -> list[str]:
    """The destinations (CIDR) of the host's IPv4 routes, default route excluded."""
    out = []
    with IPRoute() as ipr:
        for r in ipr.get_routes(family=2, table=254):  # main
            dst = r.get_attr("RTA_DST")
            if dst:
                out.append(f"{dst}/{r['dst_len']}")
    return out


def host_addresses() -> list[str]:
    """The host's IPv4 addresses."""
    with IPRoute() as ipr:
        return [str(a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr(family=2)]


def route_localnet(ifname: str) -> None:
    """Let ``ifname`` route 127.0.0.0/8 (published ports answer on the host's loopback)."""
    path = Path("/proc/sys/net/ipv4/conf") / ifname / "route_localnet"
    try:
        path.write_text("1\n")
    except OSError as e:
        raise errors.Internal(f"set route_localnet on {ifname}: {e.strerror}") from None
