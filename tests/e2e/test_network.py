"""Networks with real traffic: published ports, names, isolation, cleanup after kill -9.

Each test has its own seacand and namespace; its networks get subnets
``10.<h>.<k>.0/24`` from the test id, host ports are picked free, and at the
end nothing of the test may be left: its bridges and veths (``ip link``),
network namespaces, iptables rules (filter and nat) and address leases.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e


class Net:
    """The test's daemon, and what it made (to check nothing is left)."""

    def __init__(self, d: dm.Seacand, key: str) -> None:
        self.d = d
        self.h = int(hashlib.sha256(key.encode()).hexdigest()[:6], 16) % 200 + 20
        self.bridges: set[str] = set()
        self.subnets: set[str] = set()

    def subnet(self, k: int) -> str:
        return f"10.{self.h}.{k}.0/24"

    def create(self, name: str, k: int, *extra: str) -> str:
        self.d.seacan_ok("network", "create", "--subnet", self.subnet(k), *extra, name)
        self.remember(name)
        return name

    def remember(self, name: str) -> None:
        info = json.loads(self.d.seacan_ok("network", "inspect", name))[0]
        self.bridges.add(info["Bridge"])
        self.subnets.add(info["IPAM"]["Config"][0]["Subnet"])

    def ok(self, *args: str) -> str:
        return self.d.seacan_ok(*args)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.d.run_seacan(*args)

    def leftovers(self) -> list[str]:
        left = []
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        for br in self.bridges:
            if br and br in links:
                left.append(f"link {br} (or a veth on it)")
        rules = "".join(
            subprocess.run(["iptables-save", "-t", t], capture_output=True, text=True).stdout
            for t in ("filter", "nat")
        )
        for br in self.bridges:
            if br and br in rules:
                left.append(f"iptables rule naming {br}")
        # A network's own rules (masquerade) name its bridge; any other rule for its
        # subnet (a container's published port) is a leftover.
        lines = [x for x in rules.splitlines() if not any(b and b in x for b in self.bridges)]
        for sn in self.subnets:
            prefix = sn.rsplit(".", 1)[0] + "."
            if any(prefix in x for x in lines):
                left.append(f"iptables rule for {sn}")
        netns = self.d.state / "netns"
        if netns.exists() and any(netns.iterdir()):
            left.append(f"network namespaces {sorted(p.name for p in netns.iterdir())}")
        ipam = self.d.root / "networking" / "ipam"
        leases = [p for p in ipam.glob("*/*") if p.name[:1].isdigit()] if ipam.exists() else []
        if leases:
            left.append(f"address leases {[str(p) for p in leases]}")
        return left

    def leftovers_live(self) -> list[str]:
        """Leftovers while networks still exist: namespaces, leases, veths, per-container NAT."""
        left = [x for x in self.leftovers() if not x.startswith(("link", "iptables rule naming"))]
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        left += [f"veth on {br}" for br in self.bridges if br and f"master {br}" in links]
        return left


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def host_ip() -> str:
    out = subprocess.run(["ip", "-4", "-o", "route", "get", "192.0.2.200"], capture_output=True,
                         text=True).stdout  # fmt: skip
    m = re.search(r"src (\S+)", out)
    assert m, out
    return m.group(1)


def until(check: Callable[[], object], timeout: float = 20.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.2)


def curl(url: str) -> str:
    r = subprocess.run(["curl", "-s", "-m", "5", url], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else f"<curl exit {r.returncode}>"


@pytest.fixture
def net(seacand: dm.Seacand, ns: str, tmp_path: Path, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Net]:  # fmt: skip
    seacand.namespace = ns
    monkeypatch.setenv("SEACAN_FIFO_DIR", str(seacand.base / "fifo"))
    monkeypatch.setenv("SEACAN_LOG_DIR", str(tmp_path / "logs"))
    archive = tmp_path / "busybox.tar"
    im.write_busybox_oci(archive)
    seacand.seacan_ok("images", "import", archive)
    n = Net(seacand, request.node.nodeid)
    yield n
    for cid in seacand.seacan_ok("ps", "-a", "-q").split():
        seacand.run_seacan("rm", "-f", cid)
    for name in seacand.seacan_ok("network", "ls", "-q").split():
        n.remember(name)
        r = seacand.run_seacan("network", "rm", name)
        assert r.returncode == 0, dm.describe(r)
    assert not n.leftovers()


def httpd(n: Net, name: str, *flags: str) -> None:
    n.ok("run", "-d", "--name", name, *flags, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")


def test_published_port_answers_on_loopback_host_address_and_from_containers(net: Net) -> None:
    front = net.create("front", 1)
    p1, p2 = free_port(), free_port()
    httpd(net, "web", "--network", front, "-p", f"127.0.0.1:{p1}:80", "-p", f"{p2}:80")
    assert until(lambda: curl(f"http://127.0.0.1:{p1}/hostname") == "web\n", 10, "loopback")
    assert curl(f"http://{host_ip()}:{p2}/hostname") == "web\n"
    # from another container, through the host's address (hairpin NAT)
    out = net.ok("run", "--rm", "--network", front, "busybox",
                 "wget", "-q", "-O", "-", f"http://{host_ip()}:{p2}/hostname")  # fmt: skip
    assert out == "web\n"
    ports = json.loads(net.ok("network", "inspect", front))[0]["Containers"]
    assert [c["Ports"] for c in ports.values()] == [[f"127.0.0.1:{p1}->80/tcp", f"{p2}->80/tcp"]]
    # per container: one DNAT rule per published port, nothing else (masquerade is per network)
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    prefix = net.subnet(1).rsplit(".", 1)[0] + "."
    mine = [x for x in nat.splitlines() if prefix in x and not any(b in x for b in net.bridges)]
    assert len(mine) == 2 and all("-j DNAT" in x for x in mine), mine
    net.ok("rm", "-f", "web")
    assert curl(f"http://127.0.0.1:{p1}/hostname").startswith("<curl exit")


def test_default_bridge_network(net: Net) -> None:
    out = net.ok("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0; cat /etc/hostname")
    assert "inet 172." in out or "inet 192.168." in out, out
    net.remember("bridge")


def test_names_on_a_network_and_isolation_between_networks(net: Net) -> None:
    front, other = net.create("front", 1), net.create("other", 2)
    httpd(net, "web", "--network", front, "--network-alias", "www")
    script = (
        "wget -q -O - http://web/hostname && wget -q -O - http://www/hostname && ping -c1 -W2 web"
    )
    out = net.ok(
        "run", "--rm", "--network", front, "--name", "client", "busybox", "sh", "-c", script
    )
    assert out.startswith("web\nweb\nPING web (10."), out
    web_ip = json.loads(net.ok("network", "inspect", front))[0]["Containers"]
    (ip,) = [c["IPv4Address"].split("/")[0] for c in web_ip.values()]
    script = f"ping -c1 -W2 {ip} >/dev/null || echo unreachable; grep -c web /etc/hosts"
    r = net.run("run", "--rm", "--network", other, "busybox", "sh", "-c", script)
    assert r.stdout.split() == ["unreachable", "0"], dm.describe(r)
    # the hosts file follows containers coming and going
    httpd(net, "db", "--network", front)
    hosts = net.ok("exec", "web", "cat", "/etc/hosts")
    assert re.search(r"\tdb\n", hosts), hosts
    net.ok("rm", "-f", "db")
    assert "\tdb\n" not in net.ok("exec", "web", "cat", "/etc/hosts")


def test_udp_publish_sets_up_udp_dnat(net: Net) -> None:
    """UDP ports are published (DNAT for udp only). The busybox here has no UDP server
    (its nc lacks -u), so this checks the NAT rules, not traffic: see the report."""
    front = net.create("front", 1)
    port = free_port(socket.SOCK_DGRAM)
    net.ok("run", "-d", "--name", "udp", "--network", front, "-p", f"127.0.0.1:{port}:5353/udp",
           "busybox", "sleep", "1000")  # fmt: skip
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    dnat = [line for line in nat.splitlines() if f"--dport {port}" in line and "DNAT" in line]
    assert dnat and all("-p udp" in line for line in dnat), nat
    assert any(":5353" in line for line in dnat), dnat


def test_host_and_none(net: Net) -> None:
    out = net.ok("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    assert host_ip() in net.ok("run", "--rm", "--network", "host", "busybox", "ip", "-o", "addr")
    assert "eth0" in out or len(out.splitlines()) > 1
    out = net.ok("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert [line.split()[1] for line in out.splitlines()] == ["lo:"]
    assert not (net.d.state / "netns").exists() or not any((net.d.state / "netns").iterdir())


def test_dns_add_host_hostname_files(net: Net) -> None:
    front = net.create("front", 1)
    out = net.ok(
        "run", "--rm", "--network", front, "--hostname", "box1", "--dns", "192.0.2.53",
        "--dns-search", "corp.test", "--add-host", "db.test:192.0.2.7",
        "busybox", "sh", "-c", "cat /etc/resolv.conf; cat /etc/hostname; hostname; cat /etc/hosts",
    )  # fmt: skip
    assert out.startswith("nameserver 192.0.2.53\nsearch corp.test\nbox1\nbox1\n"), out
    assert "192.0.2.7\tdb.test\n" in out
    assert re.search(r"10\.\d+\.1\.\d+\tbox1\n", out), out
    # without --dns: the host's resolvers, never a loopback one
    out = net.ok("run", "--rm", "--network", front, "busybox", "cat", "/etc/resolv.conf")
    assert "nameserver" in out and "127." not in out


def test_bad_input_is_refused_and_nothing_is_set_up(net: Net) -> None:
    front = net.create("front", 1)
    r = net.run("network", "create", "--subnet", net.subnet(1).replace(".0/24", ".128/25"), "x")
    assert r.returncode == 1 and "overlaps network 'front'" in r.stderr, dm.describe(r)
    r = net.run("run", "--rm", "--network", "nosuchnet", "busybox", "true")
    assert r.returncode == 1 and "network 'nosuchnet' not found" in r.stderr, dm.describe(r)
    for bad in ("80:", "99999:80", "1:2:3:4", "80/sctp"):
        r = net.run("run", "--rm", "--network", front, "-p", bad, "busybox", "true")
        assert r.returncode == 1 and "seacan: invalid" in r.stderr, dm.describe(r)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = net.run("run", "--rm", "--name", "c1", "--network", front, "-p",
                    f"127.0.0.1:{port}:80", "busybox", "true")  # fmt: skip
        assert r.returncode == 1 and f"127.0.0.1:{port}/tcp is already in use" in r.stderr, (
            dm.describe(r)
        )
    assert net.ok("ps", "-a", "-q") == ""
    assert json.loads(net.ok("network", "inspect", front))[0]["Containers"] == {}
    assert not net.leftovers_live()


def _task_pid(n: Net, cid: str) -> int:
    rows = dm.table(n.d.ctr_ok("tasks", "ls", ns=n.d.namespace))
    (pid,) = [int(r["PID"]) for r in rows if r["TASK"] == cid]
    return pid


def _attached(n: Net, name: str) -> dict[str, object]:
    info: dict[str, object] = json.loads(n.ok("network", "inspect", name))[0]["Containers"]
    return info


def test_kill9_shim_networking_and_seacand_leave_nothing(net: Net) -> None:
    front = net.create("front", 1)
    port = free_port()
    # 1. the container's process is killed: the task's exit detaches the container
    httpd(net, "web", "--network", front, "-p", f"127.0.0.1:{port}:80")
    until(lambda: curl(f"http://127.0.0.1:{port}/hostname") == "web\n", 10, "web")
    os.kill(_task_pid(net, "web"), signal.SIGKILL)
    until(lambda: _clean(net, front), 30, "detach after the task died")
    # ... and seacan start attaches it again
    net.ok("start", "web")
    until(lambda: curl(f"http://127.0.0.1:{port}/hostname") == "web\n", 10, "web again")
    # 2. the networking service dies while the container runs, then the container goes
    pid = net.d.services()["networking"]
    os.kill(pid, signal.SIGKILL)
    net.d.wait_service("networking", not_pid=pid)
    net.ok("rm", "-f", "web")
    until(lambda: _clean(net, front), 30, "detach after rm")
    # 3. seacand dies (services with it) during a run's setup; the shim too
    proc = subprocess.Popen(net.d.seacan_argv("run", "-d", "--name", "web2", "--network", front,
                            "busybox", "sleep", "1000"), env=dm.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    time.sleep(0.5)
    net.d.kill9()
    proc.wait(30)
    net.d.start()
    net.d.wait_service("networking")
    net.run("rm", "-f", "web2")  # if the run got as far as making it
    until(lambda: _clean(net, front), 30, "cleanup at start")


def _clean(n: Net, network: str) -> bool:
    return not _attached(n, network) and not n.leftovers_live()
