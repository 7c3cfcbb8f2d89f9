"""More networks with real traffic: UDP publish, ``-P``, macvlan/ipvlan, ``--internal``, pods.

One seacand for the module; each test works in its own namespace, names its
networks and links and picks its subnets (``10.<h>.<k>.0/24``) from its id,
removes everything it made, and then checks nothing is left: links
(``ip link``), the daemon's network namespaces, address leases, and iptables
rules (filter and nat) naming the test's bridges or subnets.

busybox's ``nc`` here has no ``-u``, so the UDP server and client run the
host's own ``/usr/bin/python3`` inside busybox containers: ``/usr``, ``/lib``
and ``/lib64`` are bind-mounted read-only over the image (which keeps its
own files under ``/bin`` and ``/etc``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from seacan import errors
from seacan.client import Client
from seacan.networking import PodNetwork, PortMapping
from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e

PYTHON = "/usr/bin/python3"  # Debian's; needs only /usr, /lib and /lib64 (merged /usr)
WITH_PYTHON = ("-v", "/usr:/usr:ro", "-v", "/lib:/lib:ro", "-v", "/lib64:/lib64:ro")
UDP_ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(b"echo " + data, peer)
"""
UDP_ASK = """
import socket, sys
host, port, msg = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
for _ in range(50):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(msg, (host, port))
        try:
            print(s.recv(2048).decode())
            break
        except OSError:
            pass
else:
    print("no answer")
"""
EXPOSED_IMAGE = "docker.io/library/exposed:latest"


def _h(key: str, n: int = 200) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % n


def sh(*args: str, check: bool = True) -> str:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    assert not check or r.returncode == 0, dm.describe(r)
    return r.stdout


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def host_ip() -> str:
    m = re.search(r"src (\S+)", sh("ip", "-4", "-o", "route", "get", "192.0.2.200"))
    assert m
    return m.group(1)


def until(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while not (got := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return got


def curl(url: str) -> str:
    r = subprocess.run(["curl", "-s", "-m", "5", url], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else f"<curl exit {r.returncode}>"


def udp_ask(host: str, port: int, msg: bytes, tries: int = 25) -> bytes | None:
    """Send ``msg`` until an answer comes back (a fresh socket, so a fresh conntrack entry)."""
    for _ in range(tries):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            s.sendto(msg, (host, port))
            try:
                return s.recv(2048)
            except OSError:
                continue
    return None


def sandbox_key(ns: str, container: str) -> str:
    """The networking service's netns file name for a container (manager.sandbox_key)."""
    return f"{container[:40]}-{hashlib.sha256(f'{ns}/{container}'.encode()).hexdigest()[:12]}"


class T:
    """The test's namespace on the module's daemon, and what it made."""

    def __init__(self, d: dm.Seacand, ns: str, key: str, tmp: Path) -> None:
        self.d, self.ns, self.tmp = d, ns, tmp
        self.h = _h(key) + 20
        self.tag = hashlib.sha256(key.encode()).hexdigest()[:8]
        self.bridges: set[str] = set()
        self.subnets: set[str] = set()
        self.links: set[str] = set()  # host links of the test (macvlan parents, pod bridges)
        self.pods: set[str] = set()

    def subnet(self, k: int) -> str:
        return f"10.{self.h}.{k}.0/24"

    def create(self, name: str, k: int, *extra: str) -> str:
        self.ok("network", "create", "--subnet", self.subnet(k), *extra, name)
        self.remember(name)
        return name

    def remember(self, name: str) -> dict[str, object]:
        info: dict[str, object] = json.loads(self.ok("network", "inspect", name))[0]
        if info["Bridge"]:
            self.bridges.add(str(info["Bridge"]))
        self.subnets.add(info["IPAM"]["Config"][0]["Subnet"])  # type: ignore[index]
        return info

    def ok(self, *args: str) -> str:
        return self.d.seacan_ok(*args)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.d.run_seacan(*args)

    def address(self, network: str, container: str) -> str:
        eps = json.loads(self.ok("network", "inspect", network))[0]["Containers"]
        return str(eps[f"{self.ns}/{container}"]["IPv4Address"].split("/")[0])

    def parent(self) -> str:
        """A host link to be a macvlan/ipvlan parent: one end of a veth pair (this kernel has
        no ``dummy`` links), up, deleted at the end."""
        name, peer = f"scv{self.tag}", f"scw{self.tag}"
        sh("ip", "link", "del", name, check=False)
        self.links |= {name, peer}
        sh("ip", "link", "add", name, "type", "veth", "peer", "name", peer)
        sh("ip", "link", "set", name, "up")
        sh("ip", "link", "set", peer, "up")
        return name

    def leftovers(self) -> list[str]:
        left = []
        links = sh("ip", "-o", "link")
        for name in self.bridges | self.links:
            if re.search(rf"[ @]{name}[:@ ]", links):
                left.append(f"link {name} (or a link on it)")
        rules = "".join(sh("iptables-save", "-t", t) for t in ("filter", "nat"))
        left += [f"iptables rule naming {b}" for b in self.bridges | self.links if b in rules]
        # A network's own rules (masquerade) name its bridge; any other rule for its
        # subnet (a container's published port) is a leftover.
        names = self.bridges | self.links
        lines = [x for x in rules.splitlines() if not any(b and b in x for b in names)]
        for sn in self.subnets:
            if any(sn.rsplit(".", 1)[0] + "." in x for x in lines):
                left.append(f"iptables rule for {sn}")
        netns = self.d.state / "netns"
        if netns.exists() and any(netns.iterdir()):
            left.append(f"network namespaces {sorted(p.name for p in netns.iterdir())}")
        ipam = self.d.root / "networking" / "ipam"
        leases = [p for p in ipam.glob("*/*") if p.name[:1].isdigit()] if ipam.exists() else []
        if leases:
            left.append(f"address leases {[str(p) for p in leases]}")
        return left

    async def _teardown_pods(self) -> None:
        async with await Client.connect(self.d.address, self.ns) as c:
            for pod in self.pods:
                await c.networking.teardown_pod(pod)

    def leftovers_live(self) -> list[str]:
        """What must be gone while the test's networks (and links) still exist."""
        return [x for x in self.leftovers() if not x.startswith(("link", "iptables rule naming"))]

    def clean(self) -> None:
        if self.pods:
            asyncio.run(self._teardown_pods())
        for cid in self.ok("ps", "-a", "-q").split():
            self.run("rm", "-f", cid)
        for name in self.ok("network", "ls", "-q").split():
            self.remember(name)
            r = self.run("network", "rm", name)
            assert r.returncode == 0, dm.describe(r)
        for name in self.links:
            sh("ip", "link", "del", name, check=False)


@pytest.fixture
def t(seacand_module: dm.Seacand, ns: str, tmp_path: Path, request: pytest.FixtureRequest,
      monkeypatch: pytest.MonkeyPatch) -> Iterator[T]:  # fmt: skip
    d = seacand_module
    d.namespace = ns
    monkeypatch.setenv("SEACAN_FIFO_DIR", str(d.base / "fifo"))
    monkeypatch.setenv("SEACAN_LOG_DIR", str(tmp_path / "logs"))
    archive = tmp_path / "busybox.tar"
    im.write_busybox_oci(archive)
    d.seacan_ok("images", "import", archive)
    tt = T(d, ns, request.node.nodeid, tmp_path)
    try:
        yield tt
    finally:
        tt.clean()
    assert not tt.leftovers()


def test_udp_publish_answers_from_the_host_and_from_containers(t: T) -> None:
    front = t.create("front", 1)
    p1, p2 = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    t.ok("run", "-d", "--name", "echo", "--network", front, "-p", f"127.0.0.1:{p1}:5353/udp",
         "-p", f"{p2}:5353/udp", *WITH_PYTHON, "busybox", PYTHON, "-c", UDP_ECHO)  # fmt: skip
    assert until(lambda: udp_ask("127.0.0.1", p1, b"one"), 15, "the echo server") == b"echo one"
    assert udp_ask(host_ip(), p2, b"two") == b"echo two"
    assert udp_ask("127.0.0.1", p2, b"three") == b"echo three"
    ask = ("run", "--rm", "--network", front, *WITH_PYTHON, "busybox", PYTHON, "-c", UDP_ASK)
    # from another container: through the host's address (hairpin NAT), and by name
    assert t.ok(*ask, host_ip(), str(p2), "four") == "echo four\n"
    assert t.ok(*ask, "echo", "5353", "five") == "echo five\n"
    assert t.ok("port", "echo") == f"5353/udp -> 0.0.0.0:{p2}\n5353/udp -> 127.0.0.1:{p1}\n"
    # UDP only: no NAT rule for TCP on these ports
    nat = sh("iptables-save", "-t", "nat").splitlines()
    dnat = [x for x in nat if "DNAT" in x and re.search(rf"--dports? ({p1}|{p2})\b", x)]
    assert dnat and all("-p udp" in x for x in dnat), dnat
    t.ok("rm", "-f", "echo")
    assert udp_ask("127.0.0.1", p1, b"gone", tries=5) is None


def write_exposed_image(path: Path, ports: dict[str, object]) -> None:
    """busybox with ExposedPorts in its config (as ``EXPOSE`` leaves it)."""
    base = im.busybox_image()
    cfg = json.loads(base.config.data)
    cfg["config"]["ExposedPorts"] = ports
    config = im.Blob.of(im.OCI_CONFIG, im.canonical_json(cfg))
    manifest = json.loads(base.manifest.data)
    manifest["config"] = config.descriptor()
    image = im.Image(
        base.platform, config, base.layers, im.Blob.of(im.OCI_MANIFEST, im.canonical_json(manifest))
    )
    im.write_oci(path, image, EXPOSED_IMAGE)


def test_publish_all_maps_exposed_ports_to_free_host_ports(t: T) -> None:
    front = t.create("front", 1)
    write_exposed_image(t.tmp / "exposed.tar", {"80/tcp": {}, "5353/udp": {}})
    t.ok("images", "import", str(t.tmp / "exposed.tar"))
    t.ok("run", "-d", "-P", "--name", "web", "--network", front, EXPOSED_IMAGE,
         "httpd", "-f", "-p", "80", "-h", "/etc")  # fmt: skip
    lines = t.ok("port", "web").splitlines()
    assert [re.sub(r"\d+$", "N", x) for x in lines] == [
        "80/tcp -> 0.0.0.0:N",
        "5353/udp -> 0.0.0.0:N",
    ], lines
    tcp, udp = (int(x.rsplit(":", 1)[1]) for x in lines)
    assert t.ok("port", "web", "80") == t.ok("port", "web", "80/tcp") == f"0.0.0.0:{tcp}\n"
    assert until(lambda: curl(f"http://127.0.0.1:{tcp}/hostname") == "web\n", 10, "web")
    assert curl(f"http://{host_ip()}:{tcp}/hostname") == "web\n"
    r = t.run("port", "web", "81")
    assert r.returncode == 1 and "no public port '81/tcp' published for 'web'" in r.stderr
    assert udp_ask("127.0.0.1", udp, b"x", tries=3) is None  # published, but nothing listens
    # -p for an exposed port wins over -P (Docker's rule); the other exposed port stays random
    fixed = free_port()
    t.ok("run", "-d", "-P", "-p", f"127.0.0.1:{fixed}:80", "--name", "web2", "--network", front,
         EXPOSED_IMAGE, "httpd", "-f", "-p", "80", "-h", "/etc")  # fmt: skip
    lines = t.ok("port", "web2").splitlines()
    assert lines[0] == f"80/tcp -> 127.0.0.1:{fixed}" and len(lines) == 2, lines
    assert lines[1].startswith("5353/udp -> 0.0.0.0:")
    assert until(lambda: curl(f"http://127.0.0.1:{fixed}/hostname") == "web2\n", 10, "web2")
    t.ok("rm", "-f", "web", "web2")
    assert curl(f"http://127.0.0.1:{tcp}/hostname").startswith("<curl exit")


def kernel_has(kind: str, parent: str) -> bool:
    """Whether this kernel makes ``kind`` links (ipvlan is a module some kernels lack)."""
    probe = f"scx{hashlib.sha256(parent.encode()).hexdigest()[:8]}"
    r = subprocess.run(["ip", "link", "add", probe, "link", parent, "type", kind],
                       capture_output=True, text=True)  # fmt: skip
    sh("ip", "link", "del", probe, check=False)
    return r.returncode == 0


def children(parent: str) -> list[str]:
    """The host's links on ``parent`` (but its veth peer)."""
    names = re.findall(rf"^\d+: ([^@:]+)@{parent}:", sh("ip", "-o", "link"), re.M)
    return [n for n in names if not n.startswith("scw")]


@pytest.mark.parametrize("driver", ["macvlan", "ipvlan"])
def test_macvlan_and_ipvlan_networks(t: T, driver: str) -> None:
    parent = t.parent()
    lan = t.create("lan", 1, "--driver", driver, "-o", f"parent={parent}")
    info = t.remember(lan)
    assert info["Driver"] == driver and info["Bridge"] == ""
    if not kernel_has(driver, parent):
        # this machine's kernel has no ipvlan: a clear error, and nothing half set up
        r = t.run("run", "-d", "--name", "web", "--network", lan, "busybox", "sleep", "60")
        assert r.returncode == 1, dm.describe(r)
        assert f"CNI plugin {driver} ADD on {lan}" in r.stderr, r.stderr
        assert "operation not supported" in r.stderr, r.stderr
        assert t.ok("ps", "-a", "-q") == "" and t.remember(lan)["Containers"] == {}
        assert children(parent) == [] and not t.leftovers_live()
        return
    t.ok("run", "-d", "--name", "web", "--network", lan, "busybox",
         "httpd", "-f", "-p", "80", "-h", "/etc")  # fmt: skip
    ip = t.address(lan, "web")
    assert ip.startswith(f"10.{t.h}.1."), ip
    script = f"ping -c1 -W2 {ip} >/dev/null && ping -c1 -W2 web >/dev/null && wget -qO- http://web/hostname"
    r = t.run("run", "--rm", "--network", lan, "--name", "client", "busybox", "sh", "-c", script)
    assert r.returncode == 0 and r.stdout == "web\n", dm.describe(r)
    # the container's interface is of the driver's kind, on the parent, in its namespace
    netns = t.d.state / "netns" / sandbox_key(t.ns, "web")
    link = _in_netns(str(netns), "ip", "-d", "-o", "link", "show", "eth0").stdout
    assert f" {driver} " in link, link
    assert children(parent) == []  # the container's link is not in the host's namespace
    t.ok("rm", "-f", "web")
    t.ok("network", "rm", lan)
    assert children(parent) == []
    sh("ip", "link", "del", parent)
    assert not t.leftovers()


def test_internal_network_reaches_peers_by_name_but_not_the_host(t: T) -> None:
    inner = t.create("inner", 1, "--internal")
    assert t.remember(inner)["Internal"] is True
    t.ok("run", "-d", "--name", "web", "--network", inner, "busybox",
         "httpd", "-f", "-p", "80", "-h", "/etc")  # fmt: skip
    hip = host_ip()
    script = (
        "ip -4 route; "
        f"ping -c1 -W2 {hip} >/dev/null 2>&1 && echo reached-host || echo no-host; "
        "ping -c1 -W2 192.0.2.1 >/dev/null 2>&1 && echo reached-out || echo no-out; "
        "wget -qO- http://web/hostname"
    )
    r = t.run("run", "--rm", "--network", inner, "busybox", "sh", "-c", script)
    assert r.returncode == 0, dm.describe(r)
    routes, rest = r.stdout.split("no-host\n") if "no-host\n" in r.stdout else (r.stdout, "")
    assert "default" not in routes and f"10.{t.h}.1.0/24" in routes, r.stdout
    assert rest == "no-out\nweb\n", r.stdout
    # ports cannot be published on an internal network: discarded with a warning, as Docker
    port = free_port()
    r = t.run("run", "-d", "--name", "web2", "--network", inner, "-p", f"127.0.0.1:{port}:80",
              "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")  # fmt: skip
    assert r.returncode == 0, dm.describe(r)
    assert f"published ports are discarded on internal network '{inner}'" in r.stderr
    assert t.ok("port", "web2") == ""
    assert f"--dport {port} " not in sh("iptables-save", "-t", "nat")
    assert curl(f"http://127.0.0.1:{port}/hostname") == "<curl exit 7>"  # refused


# -- pods (CRI) -------------------------------------------------------------------


def _pod_conflist(t: T, bridge: str, subnet: str) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": f"pods-{t.tag}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(t.tmp / "ipam"),
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def _in_netns(netns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True, text=True,
                          timeout=30)  # fmt: skip


def test_pod_network_setup_status_teardown(t: T) -> None:
    bridge, subnet = f"scp{t.tag}", t.subnet(7)
    t.links.add(bridge)
    t.subnets.add(subnet)
    sh("ip", "link", "del", bridge, check=False)
    conf_dir = t.tmp / "net.d"
    conf_dir.mkdir()
    (conf_dir / "10-pods.conflist").write_text(json.dumps(_pod_conflist(t, bridge, subnet)))
    (conf_dir / "99-other.conflist").write_text("{}")  # only the first file counts
    www = t.tmp / "www"
    www.mkdir()
    (www / "index.html").write_text("pod\n")
    port = free_port()
    t.pods.add("pod1")

    async def setup() -> tuple[PodNetwork, PodNetwork]:
        async with await Client.connect(t.d.address, t.ns) as c:
            made = await c.networking.setup_pod(
                "pod1", str(conf_dir), ports=[PortMapping(port, 8080, "tcp", "127.0.0.1")]
            )
            with pytest.raises(errors.AlreadyExists):
                await c.networking.setup_pod("pod1", str(conf_dir))
            return made, await c.networking.pod_status("pod1")

    made, status = asyncio.run(setup())
    assert status == made and status.network == f"pods-{t.tag}" and status.ifname == "eth0"
    (ip,) = status.ips
    assert ip.startswith(f"10.{t.h}.7.") and ip.endswith("/24"), ip
    assert json.loads(status.cni_result)["ips"][0]["address"] == ip
    netns = status.netns_path
    assert Path(netns).exists() and Path(netns).parent == t.d.state / "netns"
    out = _in_netns(netns, "ip", "-4", "-o", "addr", "show", "eth0")
    assert f"inet {ip} " in out.stdout, out
    gw = f"10.{t.h}.7.1"
    r = _in_netns(netns, "/bin/busybox", "ping", "-c1", "-W2", gw)
    assert r.returncode == 0, dm.describe(r)
    # a port mapping of the pod answers on the host
    server = subprocess.Popen(["nsenter", f"--net={netns}", "/bin/busybox", "httpd", "-f",
                               "-p", "8080", "-h", str(www)])  # fmt: skip
    try:
        assert until(lambda: curl(f"http://127.0.0.1:{port}/") == "pod\n", 10, "pod port")
    finally:
        server.kill()
        server.wait()
    assert ip.split("/")[0] in sh("iptables-save", "-t", "nat")

    async def teardown() -> None:
        async with await Client.connect(t.d.address, t.ns) as c:
            await c.networking.teardown_pod("pod1")
            await c.networking.teardown_pod("pod1")  # idempotent, as StopPodSandbox
            with pytest.raises(errors.NotFound):
                await c.networking.pod_status("pod1")

    asyncio.run(teardown())
    assert not Path(netns).exists()
    assert f"master {bridge}" not in sh("ip", "-o", "link")  # no veth left on the bridge
    leases = [p.name for p in (t.tmp / "ipam").glob("*/*") if p.name[:1].isdigit()]
    assert leases == []
    rules = "".join(sh("iptables-save", "-t", tb) for tb in ("filter", "nat"))
    assert sandbox_key(t.ns, "pod1") not in rules and f"10.{t.h}.7." not in rules
    # the bridge is the host's (as cni0 for a CRI): the test removes it
    sh("ip", "link", "del", bridge)
