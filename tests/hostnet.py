"""Separate hosts on one machine: a network namespace per host, joined by veth pairs to a bridge.

The bridge stays in the root namespace and holds the first address of a
private ``10.x.y.z/29`` that no route or address of the machine overlaps;
the servers (PostgreSQL, Redis) listen there, and each host namespace gets
one further address of that subnet and nothing else (no default route), so a
host reaches the servers and each other only. Pulling a host's cable is
setting its veth's root end down: the host sees no error, its packets are
simply not delivered, as when a switch port or a link on the way dies; TCP
retransmits and carries on once the link is back.

Every name carries a random tag, so runs never collide; :meth:`HostNetwork.close`
removes whatever :meth:`HostNetwork.build` managed to create, even half-way.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import shutil
import subprocess


def namespaces_impossible() -> str | None:
    """Why this machine cannot build a :class:`HostNetwork` (None: it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 destination routed, and every address held, in the root namespace."""
    used = []
    routes = json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]")
    for r in routes:
        if r.get("dst") not in (None, "default"):
            used.append(ipaddress.ip_network(r["dst"], strict=False))
    for link in json.loads(_ip("-j", "-4", "addr", "show").stdout or "[]"):
        for a in link.get("addr_info", []):
            used.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return used


def pick_subnet(attempts: int = 64) -> ipaddress.IPv4Network:
    """A random /29 in 10.0.0.0/8 that overlaps nothing on this machine."""
    used = _networks_in_use()
    rng = random.SystemRandom()
    for _ in range(attempts):
        candidate = ipaddress.ip_network(f"10.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(32) * 8}/29")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise RuntimeError("no free 10.x.y.z/29 for a private network")


class HostNetwork:
    """A bridge in the root namespace and, per host, a namespace with one veth onto it (at most 5 hosts)."""

    def __init__(self, hosts: list[str]):
        if not 1 <= len(hosts) <= 5:  # a /29: the bridge, 5 hosts, network and broadcast addresses
            raise ValueError("1 to 5 hosts")
        self.tag = secrets.token_hex(3)
        self.hosts = list(hosts)
        self.subnet = pick_subnet()
        addresses = list(self.subnet.hosts())
        self.server_address = str(addresses[0])
        self.bridge = f"clh{self.tag}br"  # interface names: at most 15 characters
        self._host = {
            h: {
                "netns": f"convlab-{self.tag}-{h}",
                "hostname": f"convlab-{h}-{self.tag}",
                "outer": f"clh{self.tag}h{i}",
                "inner": f"clh{self.tag}n{i}",
                "address": str(addresses[i + 1]),
            }
            for i, h in enumerate(self.hosts)
        }
        self._created: list[tuple[str, str]] = []  # (kind, name), in creation order

    def hostname(self, host: str) -> str:
        """The hostname processes of ``host`` see (their own UTS namespace): worker names start with it."""
        return self._host[host]["hostname"]

    def address(self, host: str) -> str:
        """``host``'s address on the private network."""
        return self._host[host]["address"]

    def build(self) -> HostNetwork:
        """Create the bridge, the namespaces and the veth pairs; addresses up, loopback up."""
        prefix = self.subnet.prefixlen
        _ip("link", "add", self.bridge, "type", "bridge")
        self._created.append(("link", self.bridge))
        _ip("addr", "add", f"{self.server_address}/{prefix}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for h in self.hosts:
            spec = self._host[h]
            _ip("netns", "add", spec["netns"])
            self._created.append(("netns", spec["netns"]))
            _ip("link", "add", spec["outer"], "type", "veth", "peer", "name", spec["inner"])
            self._created.append(("link", spec["outer"]))  # deleting one end deletes the pair
            _ip("link", "set", spec["outer"], "master", self.bridge)
            _ip("link", "set", spec["outer"], "up")
            _ip("link", "set", spec["inner"], "netns", spec["netns"])
            inside = ("-n", spec["netns"])
            _ip(*inside, "addr", "add", f"{spec['address']}/{prefix}", "dev", spec["inner"])
            _ip(*inside, "link", "set", spec["inner"], "up")
            _ip(*inside, "link", "set", "lo", "up")
        return self

    def argv(self, host: str, argv: list[str]) -> list[str]:
        """``argv`` run on ``host``: in its network namespace, under its own hostname.

        Every step ``exec``s the next, so the process started is the command itself
        (same pid: a test can signal it and its process group directly).
        """
        spec = self._host[host]
        return [
            "ip",
            "netns",
            "exec",
            spec["netns"],
            "unshare",
            "--uts",
            "--",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            spec["hostname"],
            *argv,
        ]

    def cut(self, host: str) -> None:
        """Pull ``host``'s cable: nothing it sends arrives, nothing reaches it; it is told nothing."""
        _ip("link", "set", self._host[host]["outer"], "down")

    def restore(self, host: str) -> None:
        """Plug ``host`` back in."""
        _ip("link", "set", self._host[host]["outer"], "up")

    def close(self) -> list[str]:
        """Remove everything created, newest first, going on past failures; the failures, as text."""
        errors = []
        for kind, name in reversed(self._created):
            result = _ip(kind, "del", name, check=False)
            if result.returncode != 0 and not any(m in result.stderr for m in ("Cannot find", "No such file")):
                errors.append(f"ip {kind} del {name}: {result.stderr.strip()}")
        self._created.clear()
        return errors
