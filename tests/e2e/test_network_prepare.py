"""Networking/Prepare: a container's namespace and files first, its addresses while it is made.

``Prepare`` answers the paths a container needs to be created (its network
namespace, hosts, resolv.conf and hostname files) with its ports claimed and
its endpoints recorded, before any CNI ADD; ``Attach`` of the same container
then connects the namespace. A container made (runc create, even started)
in the prepared namespace before that Attach sees its interface appear and
its hosts file completed in place.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from seacan import errors
from seacan.client import Client
from seacan.networking import Attachment, AttachSpec, NetworkRef, PortMapping
from tests.e2e import test_network
from tests.e2e.test_network import Net, curl, free_port, until
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e
net = test_network.net  # the fixture: a daemon, busybox, and nothing left at the end

RUNTIME = "io.containerd.seacan.v2"
# Waits for its address (the Attach after the create), then serves its own hosts file.
SCRIPT = (
    "until ip -4 -o addr show eth0 | grep -q inet; do sleep 0.05; done; exec httpd -f -p 80 -h /etc"
)


def _spec(cid: str, network: str, port: int) -> AttachSpec:
    return AttachSpec(
        container_id=cid,
        networks=(NetworkRef(network, ()),),
        ports=(PortMapping(port, 80, "tcp", "127.0.0.1"),),
        hostname=cid,
    )


def test_prepare_then_create_in_the_namespace_then_attach(net: Net) -> None:
    front = net.create("front", 1)
    port = free_port()
    ns, d = net.d.namespace, net.d

    async def prepare() -> Attachment:
        async with await Client.connect(d.address, ns) as c:
            att = await c.networking.prepare(_spec("web", front, port))
            # the port is claimed by the prepared container
            with pytest.raises(errors.FailedPrecondition, match="already published"):
                await c.networking.prepare(_spec("other", front, port))
            return att

    att = asyncio.run(prepare())
    netns = Path(att.netns_path)
    assert netns.parent == d.state / "netns" and netns.stat().st_dev != netns.parent.stat().st_dev
    (ep,) = att.endpoints
    assert (ep.network, ep.ifname, ep.ip) == (front, "eth0", "")
    assert [p.host_port for p in ep.ports] == [port]
    hosts = Path(att.hosts_path)
    inode = hosts.stat().st_ino
    assert Path(att.hostname_path).read_text() == "web\n"
    assert Path(att.resolv_conf_path).read_text().startswith("nameserver ")

    # the container is created (and started) in the namespace before the Attach
    d.ctr_ok("run", "-d", "--runtime", RUNTIME, "--with-ns", f"network:{netns}",
             "--mount", f"type=bind,src={hosts},dst=/etc/hosts,options=rbind:ro",
             im.BUSYBOX_NAME, "web", "sh", "-c", SCRIPT, ns=ns)  # fmt: skip
    assert curl(f"http://127.0.0.1:{port}/hosts").startswith("<curl exit")

    async def attach() -> Attachment:
        async with await Client.connect(d.address, ns) as c:
            # only the container counts: the prepared request is completed
            return await c.networking.attach(AttachSpec(container_id="web"))

    done = asyncio.run(attach())
    (ep,) = done.endpoints
    ip = ep.ip.split("/")[0]
    assert ip.startswith(f"10.{net.h}.1."), ep
    assert done.netns_path == str(netns) and hosts.stat().st_ino == inode
    page = until(lambda: (p := curl(f"http://127.0.0.1:{port}/hosts")).count("\n") > 1 and p,
                 10, "the published port")  # fmt: skip
    assert f"{ip}\tweb\n" in str(page), page  # the hosts file, completed in place

    d.ctr_ok("tasks", "kill", "-s", "SIGKILL", "web", ns=ns)
    deadline = time.monotonic() + 10
    while "STOPPED" not in d.ctr_ok("tasks", "ls", ns=ns) and time.monotonic() < deadline:
        time.sleep(0.1)
    d.ctr_ok("tasks", "rm", "web", ns=ns)
    d.ctr_ok("containers", "rm", "web", ns=ns)  # /containers/delete: detached and forgotten
    until(lambda: not any((d.state / "netns").iterdir()), 10, "the namespace removed")


def test_prepare_refuses_bad_input_and_leaves_nothing(net: Net) -> None:
    front = net.create("front", 1)
    ns, d = net.d.namespace, net.d

    async def go() -> None:
        async with await Client.connect(d.address, ns) as c:
            with pytest.raises(errors.NotFound, match="network 'nope' not found"):
                await c.networking.prepare(_spec("web", "nope", free_port()))
            with pytest.raises(errors.InvalidArgument, match="given twice"):
                spec = _spec("web", front, free_port())
                await c.networking.prepare(
                    AttachSpec("web", (*spec.networks, *spec.networks), spec.ports)
                )
            # prepared twice: the second replaces the first; a detach undoes it
            first = await c.networking.prepare(_spec("web", front, free_port()))
            again = await c.networking.prepare(_spec("web", front, free_port()))
            assert again.netns_path == first.netns_path and os.path.exists(again.netns_path)
            assert again.endpoints[0].ports != first.endpoints[0].ports
            await c.networking.detach("web", forget=True)
            assert not os.path.exists(again.netns_path)

    asyncio.run(go())


def test_a_prepare_survives_a_networking_restart_until_its_attach(net: Net) -> None:
    """kill -9 of the service between Prepare and Attach: the young preparation is kept (a
    container may be in its namespace already) and the Attach completes it."""
    front = net.create("front", 1)
    port = free_port()
    ns, d = net.d.namespace, net.d

    async def prepare() -> Attachment:
        async with await Client.connect(d.address, ns) as c:
            return await c.networking.prepare(_spec("web", front, port))

    att = asyncio.run(prepare())
    ino = Path(att.netns_path).stat().st_ino
    pid = d.services()["networking"]
    os.kill(pid, signal.SIGKILL)
    d.wait_service("networking", not_pid=pid)

    async def attach() -> tuple[Attachment, bool]:
        async with await Client.connect(d.address, ns) as c:
            done = await c.networking.attach(AttachSpec(container_id="web"))
            same = Path(done.netns_path).stat().st_ino == ino  # the very namespace prepared
            await c.networking.detach("web", forget=True)
            return done, same

    done, same = asyncio.run(attach())
    assert same and done.netns_path == att.netns_path and done.endpoints[0].ip, done
    assert [p.host_port for p in done.endpoints[0].ports] == [port]
    assert not os.path.exists(att.netns_path)
