"""Proof that a program reached nothing but loopback: run it under strace and read every
address it connected or sent to, its children's included.

A name lookup counts as outside traffic wherever the resolver is (a loopback stub resolver
too): a client that looks a host up meant to go there. Unix sockets and netlink are local.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

_SYSCALLS = "connect,sendto,sendmsg,sendmmsg"
_INET = re.compile(
    r'sin6?_port=htons\((?P<port>\d+)\), (?:sin_addr=inet_addr\("|sin6_flowinfo=[^,]*, inet_pton\(AF_INET6, ")'
    r'(?P<addr>[^"]+)"'
)
# With -xx strace prints every buffer as \xHH escapes.
_BUFFER = re.compile(r'"((?:\\x[0-9a-f]{2})+)"')


def strace_prefix(log: Path) -> list[str]:
    """Put before a command to trace it (and every process it starts) into ``log``."""
    strace = shutil.which("strace")
    if strace is None:
        raise RuntimeError("strace is needed to check that the clients stay on loopback (apt-get install strace)")
    # --seccomp-bpf stops the process only at the traced calls: a small cost even for busy clients.
    trace = ["-f", "-qq", "--seccomp-bpf", "-e", f"trace={_SYSCALLS}", "-e", "signal=none"]
    return [strace, *trace, "-xx", "-s", "300", "-o", str(log)]  # every buffer as \\xHH escapes


@dataclass
class Egress:
    addresses: set[tuple[str, int]] = field(default_factory=set)  # outside destinations, or any DNS server
    names: set[str] = field(default_factory=set)  # hosts looked up

    def __bool__(self) -> bool:
        return bool(self.addresses or self.names)

    def __str__(self) -> str:
        hosts = ", ".join(sorted(self.names)) or "-"
        where = ", ".join(f"{addr}:{port}" for addr, port in sorted(self.addresses)) or "-"
        return f"looked up: {hosts}; sent to: {where}"


def outside_traffic(log: Path) -> Egress:
    egress = Egress()
    for line in log.read_text(errors="replace").splitlines():
        for match in _INET.finditer(line):
            addr, port = _unescape(match["addr"]).decode(), int(match["port"])
            if port == 53 or not _loopback(addr):
                egress.addresses.add((addr, port))
        for buffer in _BUFFER.findall(line):
            name = _dns_question(_unescape(buffer))
            if name:
                egress.names.add(name)
    return egress


def _unescape(text: str) -> bytes:
    return bytes.fromhex(text.replace("\\x", ""))


def _loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _dns_question(packet: bytes) -> str | None:
    """The name asked for, when ``packet`` reads as a DNS query (one question, QR bit clear)."""
    if len(packet) < 17 or packet[2] & 0x80 or packet[4:6] != b"\x00\x01":
        return None
    labels, offset = [], 12
    while offset < len(packet) and packet[offset]:
        size = packet[offset]
        label = packet[offset + 1 : offset + 1 + size]
        if size > 63 or len(label) != size or not re.fullmatch(rb"[A-Za-z0-9_-]+", label):
            return None
        labels.append(label.decode())
        offset += 1 + size
    return ".".join(labels) or None
