"""Settings a running gateway cannot change in place: a reload that touches them is refused.

Applying only part of such a change is worse than refusing it: a new ext_proc port written
into Envoy's ext_proc cluster while the processes still listen on the old one is an outage.
Listeners are not here: Envoy moves them through LDS.
"""

from __future__ import annotations

from extproc.config.model import GatewayConfig

# (section, field): each is bound by a running process (sockets, worker count, Envoy's bootstrap).
RESTART_ONLY: tuple[tuple[str, str], ...] = (
    ("extproc", "address"),
    ("extproc", "port"),
    ("extproc", "unix_socket"),
    ("extproc", "workers"),
    ("extproc", "busy_poll_us"),
    ("extproc", "observe_streams"),  # Envoy's listener filters and the ext_proc's marks must agree
    ("extproc", "admin_address"),
    ("extproc", "admin_port"),
    ("envoy", "admin_port"),
    ("envoy", "admin_socket"),
    ("envoy", "xds_dir"),
    ("envoy", "base_id"),
    ("envoy", "concurrency"),
    ("store", "backend"),  # the store's connections and in-memory state live as long as the process
    ("store", "redis"),
)


def restart_required(running: GatewayConfig, new: GatewayConfig) -> list[str]:
    """One problem per restart-only setting that differs, naming its key."""
    problems = []
    for section, name in RESTART_ONLY:
        if getattr(getattr(running, section), name) != getattr(getattr(new, section), name):
            problems.append(f"{section}.{name} changed: restart the gateway to apply it")
    return problems
