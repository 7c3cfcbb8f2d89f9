"""Attacks on networking input: values written into a container's hosts,
resolv.conf and hostname files (newline injection), network names that
become file and bridge names, and port specs."""

from __future__ import annotations

import pytest

from seacan import errors
from seacan.networking import (
    AttachSpec,
    NetworkRef,
    parse_extra_host,
    parse_port_spec,
    validate_name,
)
from seacan.services.networking import conf

pytestmark = pytest.mark.unit

INJECT = "evil\n6.6.6.6 bank.example"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hostname": INJECT},
        {"hostname": "a b"},
        {"hostname": "#x"},
        {"dns_servers": ("1.1.1.1\nnameserver 6.6.6.6",)},
        {"dns_servers": ("not-an-ip",)},
        {"dns_search": ("example.com\nnameserver 6.6.6.6",)},
        {"dns_search": ("a b",)},
        {"dns_options": ("ndots:1\nnameserver 6.6.6.6",)},
        {"dns_options": ("ndots:1 rotate",)},
        {"extra_hosts": (INJECT + ":1.2.3.4",)},
        {"extra_hosts": ("a b:1.2.3.4",)},
        {"extra_hosts": ("x:1.2.3.4\n6.6.6.6",)},
        {"networks": (NetworkRef("front", ("ok",)),), "hostname": "x" * 300},
    ],
    ids=lambda kw: "-".join(kw),
)
def test_injection_into_container_files_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(errors.InvalidArgument):
        AttachSpec("c1", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("alias", [INJECT, "a b", "", "x\0y", "-x"])
def test_injected_alias_is_refused(alias: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="network alias"):
        NetworkRef("front", (alias,))


def test_good_values_still_pass_and_stay_one_line_each() -> None:
    spec = AttachSpec(
        "c1",
        networks=(NetworkRef("front", ("www", "api.internal")),),
        hostname="web-1.example",
        dns_servers=("10.0.0.2", "fd00::53"),
        dns_search=("corp.example", "."),
        dns_options=("ndots:2", "edns0", "timeout:3"),
        extra_hosts=("db.local:10.0.0.5", "v6=::1"),
    )
    text = conf.resolv_conf("", spec.dns_servers, spec.dns_search, spec.dns_options)
    assert text.count("\n") == 4
    hosts = conf.hosts_file(spec.hostname, [], [], [parse_extra_host(h) for h in spec.extra_hosts])
    assert hosts.endswith("10.0.0.5\tdb.local\n::1\tv6\n")


@pytest.mark.parametrize(
    "name", ["../x", "a/b", ".hidden", "x" * 65, "a\nb", "", "-rf", "a b", "é", "none", "host"]
)
def test_network_names_that_would_be_paths_or_flags(name: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        validate_name(name)


def test_bridge_names_never_carry_the_network_name() -> None:
    b = conf.bridge_name("k", "x" * 64)
    assert len(b) <= 15 and b.startswith("sc-") and b[3:].isalnum()


@pytest.mark.parametrize(
    "spec",
    [
        "9" * 5000,
        "1:" + "9" * 5000,
        "\uff18\uff10:80",  # fullwidth digits
        "\u0668\u0660",  # Arabic-Indic digits
        "0:80",
        "65536:80",
        "80:0",
        "8000-8010:80",
        "1.2.3.4.5:80:80",
        "80/sctp\n",
    ],
    ids=["huge", "huge-cont", "fullwidth", "arabic", "zero", "65536", "cont0", "range", "ip", "nl"],
)
def test_hostile_port_specs(spec: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        parse_port_spec(spec)
