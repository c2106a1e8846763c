"""Reloader: restart-only settings refused by name, any failure kept inside (logged, counted), the
watcher outliving every error, and Envoy's acknowledgement (or refusal) deciding the swap."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import extproc.app.reload as reload_module
from extproc.app.reload import Reloader
from extproc.app.restart import restart_required
from extproc.config.load import load_file
from extproc.state import GatewayState
from extproc.xds import sync as xds_sync
from extproc.xds.envoy_admin import XdsState
from tests.support.wait import wait_until_async

BASE: dict[str, Any] = {
    "extproc": {"port": 50100, "workers": 1},
    "providers": [{"name": "mock", "kind": "mock"}],
    "routes": [{"model": "a-*", "provider": "mock"}],
}


def errors_counted() -> float:
    return REGISTRY.get_sample_value("gateway_config_reloads_total", {"result": "error"}) or 0.0


def write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def models(state: GatewayState) -> list[str]:
    return [route.model for route in state.snapshot.config.routes]


def test_restart_only_settings_are_named_each_with_the_restart_advice(tmp_path: Path) -> None:
    running = load_file(write(tmp_path / "a.yaml", BASE), env={})
    changed = {**BASE, "extproc": {"port": 50200, "workers": 2}, "envoy": {"base_id": 7}}
    new = load_file(write(tmp_path / "b.yaml", changed), env={})
    assert restart_required(running, new) == [
        "extproc.port changed: restart the gateway to apply it",
        "extproc.workers changed: restart the gateway to apply it",
        "envoy.base_id changed: restart the gateway to apply it",
    ]
    assert restart_required(running, running) == []


def test_a_reload_that_changes_the_extproc_port_is_refused_and_the_running_config_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "gateway.yaml", BASE)
    state = GatewayState(load_file(path, env={}))
    write(path, {**BASE, "extproc": {"port": 50200}, "routes": [{"model": "b-*", "provider": "mock"}]})
    before = errors_counted()
    result = asyncio.run(Reloader(path, state, write_xds=False).reload())
    assert not result.ok
    assert result.problems == ["extproc.port changed: restart the gateway to apply it"]
    assert models(state) == ["a-*"] and state.snapshot.config.extproc.port == 50100
    assert errors_counted() == before + 1


def test_an_unexpected_exception_while_applying_fails_the_reload_and_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def times_out(*_: object) -> list[str]:
        raise subprocess.TimeoutExpired(["envoy", "--mode", "validate"], 60)

    monkeypatch.setattr(reload_module, "apply_to_envoy", times_out)
    path = write(tmp_path / "gateway.yaml", BASE)
    state = GatewayState(load_file(path, env={}))
    write(path, {**BASE, "routes": [{"model": "b-*", "provider": "mock"}]})
    before = errors_counted()
    result = asyncio.run(Reloader(path, state, write_xds=True).reload())
    assert not result.ok
    assert "TimeoutExpired" in result.problems[0]
    assert models(state) == ["a-*"]
    assert errors_counted() == before + 1


def test_the_watcher_keeps_running_after_its_file_watch_and_a_reload_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "gateway.yaml", BASE)
    state = GatewayState(load_file(path, env={}))
    write(path, {**BASE, "routes": [{"model": "b-*", "provider": "mock"}]})
    calls = {"watch": 0, "load": 0}
    done = asyncio.Event()

    async def awatch(*_: object, **__: object) -> AsyncIterator[set[Any]]:
        calls["watch"] += 1
        if calls["watch"] == 1:
            raise RuntimeError("inotify went away")
        yield {(reload_module.watchfiles.Change.modified, str(path))}  # this reload fails (the load below raises)
        yield {(reload_module.watchfiles.Change.modified, str(path))}  # this one succeeds
        done.set()
        await asyncio.Event().wait()

    real_load = reload_module.load_file

    def flaky_load(config_path: Path) -> Any:
        calls["load"] += 1
        if calls["load"] == 1:
            raise subprocess.TimeoutExpired(["something"], 1)
        return real_load(config_path, env={})

    monkeypatch.setattr(reload_module.watchfiles, "awatch", awatch)
    monkeypatch.setattr(reload_module, "load_file", flaky_load)
    before = errors_counted()

    async def scenario() -> None:
        watcher = asyncio.ensure_future(Reloader(path, state, write_xds=False).watch())
        await asyncio.wait_for(done.wait(), 30)
        watcher.cancel()

    asyncio.run(scenario())
    assert calls == {"watch": 2, "load": 2}
    assert errors_counted() == before + 2  # the watch failure and the failed reload
    assert models(state) == ["b-*"]


class FakeEnvoy:
    """Answers xds_state from a script; the last state repeats."""

    url = "http://127.0.0.1:1"

    def __init__(self, states: list[XdsState], reasons: list[str]) -> None:
        self.states = states
        self.reasons = reasons

    async def xds_state(self) -> XdsState:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    async def rejection_reasons(self) -> list[str]:
        return self.reasons


def state_of(version: str, rejected_listeners: int = 0) -> XdsState:
    return XdsState({"clusters": version, "listeners": version}, {"clusters": 0, "listeners": rejected_listeners})


def test_envoy_refusing_the_new_listeners_fails_with_its_reason_and_rolls_the_files_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xds_sync.render, "validate", lambda config: None)
    running = load_file(write(tmp_path / "a.yaml", BASE), env={})
    new = load_file(write(tmp_path / "b.yaml", {**BASE, "listeners": [{"port": 10777}]}), env={})
    envoy = FakeEnvoy([state_of("v1"), state_of("v1"), state_of("v1", rejected_listeners=1)], ["cannot bind: busy"])
    problems = asyncio.run(xds_sync.apply_to_envoy(new, running, tmp_path, envoy, 10))  # type: ignore[arg-type]
    assert problems == ["Envoy rejected the new listeners: cannot bind: busy"]
    lds = yaml.safe_load((tmp_path / "lds.yaml").read_text())
    assert lds["resources"][0]["address"]["socket_address"]["port_value"] == running.listeners[0].port


def test_envoy_showing_the_written_version_completes_the_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xds_sync.render, "validate", lambda config: None)
    monkeypatch.setattr(xds_sync, "new_version", lambda: "v2")
    running = load_file(write(tmp_path / "a.yaml", BASE), env={})
    envoy = FakeEnvoy([state_of("v1"), state_of("v1"), state_of("v2")], [])
    assert asyncio.run(xds_sync.apply_to_envoy(running, running, tmp_path, envoy, 10)) == []  # type: ignore[arg-type]
    assert yaml.safe_load((tmp_path / "cds.yaml").read_text())["version_info"] == "v2"


def test_envoy_that_never_shows_the_version_times_out_the_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xds_sync.render, "validate", lambda config: None)
    running = load_file(write(tmp_path / "a.yaml", BASE), env={})
    envoy = FakeEnvoy([state_of("v1")], [])
    problems = asyncio.run(xds_sync.apply_to_envoy(running, running, tmp_path, envoy, 0.2))  # type: ignore[arg-type]
    assert len(problems) == 1 and "did not apply clusters version" in problems[0]


class FileReadingEnvoy:
    """Applies whatever the files hold each time it is asked, as Envoy may on any rename, and
    records every moment its listeners named a cluster its clusters lacked."""

    url = "http://127.0.0.1:1"

    def __init__(self, xds_dir: Path) -> None:
        self.xds_dir = xds_dir
        self.unknown_clusters: list[str] = []
        self.cluster_sets: list[set[str]] = []

    def _read(self, name: str) -> dict[str, Any]:
        return yaml.safe_load((self.xds_dir / name).read_text())

    async def xds_state(self) -> XdsState:
        cds, lds = self._read("cds.yaml"), self._read("lds.yaml")
        clusters = {c["name"] for c in cds["resources"]}
        self.cluster_sets.append(clusters)
        self.unknown_clusters += [name for name in _named_clusters(lds) if name not in clusters]
        versions = {"clusters": cds.get("version_info", ""), "listeners": lds.get("version_info", "")}
        return XdsState(versions, {"clusters": 0, "listeners": 0})


def _named_clusters(node: Any) -> list[str]:
    if isinstance(node, dict):
        named = [node["cluster"]] if isinstance(node.get("cluster"), str) else []
        return named + [n for value in node.values() for n in _named_clusters(value)]
    if isinstance(node, list):
        return [n for value in node for n in _named_clusters(value)]
    return []


def test_a_provider_swap_reaches_envoy_clusters_first_and_never_routes_to_a_missing_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xds_sync.render, "validate", lambda config: None)
    openai = {"kind": "openai", "base_url": "https://api.openai.com/v1", "api_key_env": "K"}
    old = {**BASE, "providers": [{"name": "old", **openai}], "routes": [{"model": "*", "provider": "old"}]}
    new = {**BASE, "providers": [{"name": "new", **openai}], "routes": [{"model": "*", "provider": "new"}]}
    running = load_file(write(tmp_path / "a.yaml", old), env={"K": "k"})
    config = load_file(write(tmp_path / "b.yaml", new), env={"K": "k"})
    xds_dir = tmp_path / "xds"
    xds_sync.render.write_xds(running, xds_dir, check=False, version="v0")
    envoy = FileReadingEnvoy(xds_dir)

    assert asyncio.run(xds_sync.apply_to_envoy(config, running, xds_dir, envoy, 5)) == []  # type: ignore[arg-type]
    assert envoy.unknown_clusters == []
    assert any({"provider_old", "provider_new"} <= c for c in envoy.cluster_sets)  # both, while listeners moved
    final = {c["name"] for c in yaml.safe_load((xds_dir / "cds.yaml").read_text())["resources"]}
    assert "provider_new" in final and "provider_old" not in final


async def _watch_until(reloader: Reloader, done: Any, timeout: float = 15) -> None:
    watcher = asyncio.ensure_future(reloader.watch())
    try:
        assert await wait_until_async(done, timeout, interval=0.05), "the watcher never applied the change"
    finally:
        watcher.cancel()


def test_a_file_written_before_the_watcher_registered_is_applied_once_it_is(tmp_path: Path) -> None:
    path = write(tmp_path / "gateway.yaml", BASE)
    state = GatewayState(load_file(path, env={}))
    write(path, {**BASE, "routes": [{"model": "b-*", "provider": "mock"}]})  # no watcher yet: no event
    reloader = Reloader(path, state, write_xds=False)
    assert not reloader.watching.is_set()
    asyncio.run(_watch_until(reloader, lambda: reloader.watching.is_set() and models(state) == ["b-*"]))


def _kubelet_publish(directory: Path, generation: str, config: dict[str, Any]) -> None:
    """What the kubelet does for a ConfigMap volume: a new timestamped directory, a `..data`
    symlink swapped to it by rename, and the key as a symlink through `..data`."""
    (directory / generation).mkdir()
    write(directory / generation / "gateway.yaml", config)
    (directory / "..data_tmp").symlink_to(generation)
    (directory / "..data_tmp").rename(directory / "..data")
    if not (directory / "gateway.yaml").is_symlink():
        (directory / "gateway.yaml").symlink_to("..data/gateway.yaml")


def test_a_configmap_update_laid_out_the_way_the_kubelet_does_it_is_reloaded(tmp_path: Path) -> None:
    _kubelet_publish(tmp_path, "..2026_12_02_01_00_00.1", BASE)
    path = tmp_path / "gateway.yaml"
    state = GatewayState(load_file(path, env={}))
    reloader = Reloader(path, state, write_xds=False)

    async def scenario() -> None:
        watcher = asyncio.ensure_future(reloader.watch())
        try:
            await asyncio.wait_for(reloader.watching.wait(), 10)
            new = {**BASE, "routes": [{"model": "k-*", "provider": "mock"}]}
            _kubelet_publish(tmp_path, "..2026_12_02_01_05_00.2", new)
            shutil.rmtree(tmp_path / "..2026_12_02_01_00_00.1")  # the kubelet removes the old generation
            applied = await wait_until_async(lambda: models(state) == ["k-*"], 15, interval=0.05)
            assert applied, "the ConfigMap update was never applied"
        finally:
            watcher.cancel()

    asyncio.run(scenario())
    assert reloader.status()["version"] == state.snapshot.config.text_hash


def test_status_shows_the_running_version_and_the_last_refusal_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path / "gateway.yaml", BASE)
    state = GatewayState(load_file(path, env={}))
    reloader = Reloader(path, state, write_xds=False)
    first = reloader.status()
    assert first["version"] and first["last_reload"] is None and first["last_error"] is None

    write(path, {**BASE, "providers": [{"name": "broken", "kind": "nonsense"}]})
    assert not asyncio.run(reloader.reload()).ok
    refused = reloader.status()
    assert refused["version"] == first["version"]  # the running config did not change
    error = refused["last_error"]
    assert isinstance(error, dict) and error["path"] == str(path)
    assert any("providers[0].kind" in problem for problem in error["problems"])

    write(path, {**BASE, "routes": [{"model": "c-*", "provider": "mock"}]})
    assert asyncio.run(reloader.reload()).ok
    applied = reloader.status()
    assert applied["version"] != first["version"]
    assert applied["last_reload"] == {"ok": True, "at": applied["loaded_at"], "version": applied["version"]}
    assert applied["last_error"] == error  # the last refusal stays visible
