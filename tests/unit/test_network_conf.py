"""Pure parts of networking: -p parsing, --add-host, conflists, subnets, the per-container files."""

from __future__ import annotations

import pytest

from seacan import errors
from seacan.networking import (
    Endpoint,
    Network,
    PortMapping,
    exposed_ports,
    parse_extra_host,
    parse_port_spec,
    validate_name,
)
from seacan.services.networking import conf, iptables

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("80", PortMapping(0, 80)),
        ("8080:80", PortMapping(8080, 80)),
        ("127.0.0.1:8080:80", PortMapping(8080, 80, "tcp", "127.0.0.1")),
        ("127.0.0.1::80/udp", PortMapping(0, 80, "udp", "127.0.0.1")),
        ("53:53/UDP", PortMapping(53, 53, "udp")),
        ("[::1]:8080:80", PortMapping(8080, 80, "tcp", "::1")),
    ],
)
def test_port_spec(spec: str, want: PortMapping) -> None:
    assert parse_port_spec(spec) == want


@pytest.mark.parametrize("spec", ["", "x", "80:", "99999:80", "8080:0", "80/sctp", "1.2.3:80:80"])
def test_bad_port_spec(spec: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=r"port|protocol|IP"):
        parse_port_spec(spec)


def test_exposed_ports() -> None:
    cfg = {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}
    assert exposed_ports(cfg) == (PortMapping(0, 53, "udp"), PortMapping(0, 80, "tcp"))


def test_extra_host() -> None:
    assert parse_extra_host("db:10.0.0.5") == ("db", "10.0.0.5")
    with pytest.raises(errors.InvalidArgument, match="add-host"):
        parse_extra_host("db:nope")


def test_names() -> None:
    assert validate_name("front-1") == "front-1"
    for bad in ("", "a/b", "..", "host", "none", "x" * 65):
        with pytest.raises(errors.InvalidArgument):
            validate_name(bad)


def test_bridge_name_is_short_and_per_daemon() -> None:
    a, b = conf.bridge_name("/var/lib/seacan", "front"), conf.bridge_name("/tmp/x", "front")
    assert a.startswith("sc-") and len(a) == 15 and a != b


def test_subnets() -> None:
    nets = [Network("a", subnet="10.1.0.0/16"), Network("b", subnet="10.2.3.0/24")]
    hit = conf.overlapping("10.1.2.0/24", nets)
    assert hit is not None and hit.name == "a"
    assert conf.overlapping("10.3.0.0/24", nets) is None
    with pytest.raises(errors.InvalidArgument, match=r"did you mean 10\.1\.2\.0/24"):
        conf.parse_subnet("10.1.2.3/24")
    with pytest.raises(errors.InvalidArgument):
        conf.parse_subnet("fd00::/64")
    got = conf.free_subnet([Network("x", subnet="172.17.0.0/16")], ["172.18.0.0/16", "0.0.0.0/0"])
    assert got not in ("172.17.0.0/16", "172.18.0.0/16")
    assert conf.gateway_for("10.9.8.0/24", "") == "10.9.8.1"
    with pytest.raises(errors.InvalidArgument, match="not a host address"):
        conf.gateway_for("10.9.8.0/24", "10.9.9.1")


def test_bridge_conflist() -> None:
    net = Network("front", subnet="10.4.0.0/24", gateway="10.4.0.1", bridge="sc-abc")
    cl = conf.conflist(net, "/var/lib/seacan/networking/ipam")
    assert cl["name"] == "front" and cl["cniVersion"] == "1.0.0"
    # only the bridge plugin: masquerade and published ports are seacan's own rules
    [bridge] = cl["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "sc-abc"
    assert bridge["isGateway"] and not bridge["ipMasq"] and bridge["hairpinMode"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.4.0.0/24", "gateway": "10.4.0.1"}]]
    assert bridge["ipam"]["dataDir"] == "/var/lib/seacan/networking/ipam"
    internal = conf.conflist(
        Network("i", subnet="10.5.0.0/24", gateway="10.5.0.1", bridge="sc-d", internal=True), "/x"
    )
    [ibridge] = internal["plugins"]
    assert not ibridge["isGateway"] and not ibridge["ipMasq"] and ibridge["ipam"]["routes"] == []


def test_macvlan_conflist() -> None:
    net = Network("m", driver="macvlan", subnet="10.6.0.0/24", gateway="10.6.0.1",
                  options={"parent": "eth0"})  # fmt: skip
    (plugin,) = conf.conflist(net, "/x")["plugins"]
    assert plugin["type"] == "macvlan" and plugin["master"] == "eth0" and plugin["mode"] == "bridge"
    with pytest.raises(errors.InvalidArgument, match="parent"):
        conf.conflist(Network("m", driver="ipvlan", subnet="10.6.0.0/24"), "/x")


def test_hosts_file() -> None:
    own = [Endpoint("ns", "web", "front", "eth0", "10.4.0.2/24")]
    peers = [
        Endpoint("ns", "db", "front", "eth0", "10.4.0.3/24", aliases=("database",)),
        Endpoint("ns", "cache", "front", "eth0", ""),  # still being added: no address yet
    ]
    text = conf.hosts_file("web-host", own, peers, [("extra", "192.0.2.9")])
    assert text.startswith("127.0.0.1\tlocalhost\n")
    assert "192.0.2.9\textra\n" in text
    assert "10.4.0.2\tweb-host\n" in text
    assert text.endswith("10.4.0.3\tdb database\n")


def test_resolv_conf_drops_loopback_resolvers() -> None:
    host = "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example.com\noptions edns0\n"
    assert conf.resolv_conf(host) == ("nameserver 10.0.0.2\nsearch example.com\noptions edns0\n")
    assert conf.resolv_conf("nameserver 127.0.0.53\n").startswith("nameserver 8.8.8.8\n")
    assert conf.resolv_conf(host, ["1.1.1.1"], ["a.test"], ["ndots:2"]) == (
        "nameserver 1.1.1.1\nsearch a.test\noptions ndots:2\n"
    )


def test_cni_result_endpoint() -> None:
    result = {
        "interfaces": [
            {"name": "sc-abc", "mac": "aa"},
            {"name": "eth0", "mac": "bb", "sandbox": "/x"},
        ],
        "ips": [{"address": "10.4.0.2/24", "interface": 1}],
    }
    assert conf.result_endpoint(result, "eth0") == ("10.4.0.2/24", "bb")


def test_isolation_rules_name_the_bridge() -> None:
    for internal in (False, True):
        for _chain, rule in iptables.rules("sc-abc", internal):
            assert "sc-abc" in rule


def test_nat_rules_are_per_network_and_name_the_bridge() -> None:
    rules = iptables.nat_rules("sc-abc", "10.4.0.0/24", internal=False)
    assert all("sc-abc" in rule and chain == iptables.POSTROUTING for chain, rule in rules)
    assert ["-s", "10.4.0.0/24", "!", "-o", "sc-abc", "-j", "MASQUERADE"] in [r for _, r in rules]
    assert ["-s", "127.0.0.0/8", "-o", "sc-abc", "-j", "MASQUERADE"] in [r for _, r in rules]
    assert iptables.nat_rules("sc-abc", "10.4.0.0/24", internal=True) == []


def test_published_ports_are_one_restore() -> None:
    ports = [
        iptables.Port("tcp", "127.0.0.1", 8080, "10.4.0.2", 80),
        iptables.Port("udp", "", 5353, "10.4.0.2", 53),
    ]
    text = iptables.restore_text("-A", ports, "seacan-d-c")
    assert text == (
        "*nat\n"
        "-A SEACAN-DNAT -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -m comment --comment "
        "seacan-d-c -j DNAT --to-destination 10.4.0.2:80\n"
        "-A SEACAN-DNAT -p udp -m udp --dport 5353 -m comment --comment seacan-d-c "
        "-j DNAT --to-destination 10.4.0.2:53\n"
        "COMMIT\n"
    )
    assert iptables.restore_text("-D", ports, "seacan-d-c").count("-D SEACAN-DNAT") == 2
