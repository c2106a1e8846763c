"""Reading strace's record of a client run (support/egress.py): loopback and local sockets are
fine; any other destination, and any name lookup, is traffic that meant to leave the machine."""

from __future__ import annotations

from pathlib import Path

from tests.support.egress import outside_traffic


def _hex(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return "".join(f"\\x{byte:02x}" for byte in data)


def _dns_query(name: str) -> bytes:
    labels = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    return b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + b"\x00\x00\x01\x00\x01"


def _inet(addr: str, port: int, family: str = "AF_INET") -> str:
    if family == "AF_INET6":
        return (
            f'{{sa_family=AF_INET6, sin6_port=htons({port}), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "{_hex(addr)}"), '
            "sin6_scope_id=0}"
        )
    return f'{{sa_family=AF_INET, sin_port=htons({port}), sin_addr=inet_addr("{_hex(addr)}")}}'


def _log(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "strace.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_loopback_and_local_sockets_are_not_outside_traffic(tmp_path: Path) -> None:
    log = _log(
        tmp_path,
        f"101 connect(7, {_inet('127.0.0.1', 20345)}, 16) = -1 EINPROGRESS (Operation now in progress)",
        f"101 connect(8, {_inet('::1', 20345, 'AF_INET6')}, 28) = 0",
        f"101 connect(9, {_inet('::ffff:127.0.0.1', 20345, 'AF_INET6')}, 28) = 0",
        f'102 connect(3, {{sa_family=AF_UNIX, sun_path="{_hex("/var/run/nscd/socket")}"}}, 110) = -1 ENOENT',
        f'102 sendto(5, "{_hex(b"x" * 40)}", 40, MSG_NOSIGNAL, NULL, 0) = 40',
    )
    assert not outside_traffic(log)


def test_a_connection_beyond_loopback_is_reported(tmp_path: Path) -> None:
    log = _log(tmp_path, f"103 connect(7, {_inet('203.0.113.9', 443)}, 16) = -1 EINPROGRESS")
    egress = outside_traffic(log)
    assert egress.addresses == {("203.0.113.9", 443)}
    assert "203.0.113.9:443" in str(egress)


def test_a_name_lookup_is_reported_with_the_name_even_to_a_loopback_resolver(tmp_path: Path) -> None:
    query = _hex(_dns_query("statsig.example.com"))
    log = _log(
        tmp_path,
        f"104 connect(7, {_inet('127.0.0.53', 53)}, 16) = 0",
        f'104 sendmmsg(7, [{{msg_hdr={{msg_name=NULL, msg_namelen=0, msg_iov=[{{iov_base="{query}", iov_len=37}}]}}}}], 1, 0) = 1',
        f'105 sendto(9, "{query}", 37, MSG_NOSIGNAL, {_inet("10.0.0.53", 53)}, 16) = 37',
    )
    egress = outside_traffic(log)
    assert egress.names == {"statsig.example.com"}
    assert egress.addresses == {("127.0.0.53", 53), ("10.0.0.53", 53)}
