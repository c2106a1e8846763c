"""Envoy's worker threads: as configured, else one per core the process may use, cgroup quota included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from extproc import cores


def test_usable_cores_is_the_cpu_affinity_without_a_cgroup_quota(tmp_path: Path) -> None:
    unlimited = tmp_path / "cpu.max"
    unlimited.write_text("max 100000\n")
    assert cores.usable_cores(unlimited) == len(os.sched_getaffinity(0))
    assert cores.usable_cores(tmp_path / "absent") == len(os.sched_getaffinity(0))


def test_a_cgroup_quota_below_the_affinity_caps_the_usable_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    quota = tmp_path / "cpu.max"
    quota.write_text("250000 100000\n")  # 2.5 CPUs: a third core is partly usable
    assert cores.usable_cores(quota) == 3
    quota.write_text("50000 100000\n")  # half a CPU is still one core to run on
    assert cores.usable_cores(quota) == 1


def test_envoy_gets_a_thread_per_usable_core_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cores, "usable_cores", lambda: 2)
    assert cores.envoy_threads(None) == 2
    assert cores.envoy_threads(1) == 1
