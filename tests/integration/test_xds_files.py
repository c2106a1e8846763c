"""Envoy reads listeners and clusters from the watched xDS directory: a new rendering,
written atomically, is picked up while Envoy runs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from extproc.config.load import load_file
from extproc.xds.render import write_xds
from tests.support.metrics import metric_sum
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_rendered_xds_files_are_picked_up_by_a_running_envoy(tmp_path: Path) -> None:
    config = {"providers": [{"name": "mock", "kind": "mock"}], "routes": [{"model": "*", "provider": "mock"}]}
    stack = GatewayStack(tmp_path, config).start()
    try:
        clusters = httpx.get(stack.envoy_admin_url + "/clusters").text
        assert "provider_extra::" not in clusters
        stack.config["providers"] = [
            *config["providers"],
            {"name": "extra", "kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"},
        ]
        loaded = load_file(stack.write_config(), stack.env)
        write_xds(loaded, tmp_path / "xds")
        assert wait_until(
            lambda: "provider_extra::" in httpx.get(stack.envoy_admin_url + "/clusters").text, timeout=10
        ), "Envoy did not load the new cluster"
        # The ext_proc's watcher reloads the same edit and rewrites the files: let it finish first.
        assert wait_until(lambda: metric_sum(stack, "gateway_config_reloads_total", 'result="ok"') == 1, timeout=30), (
            "the ext_proc did not reload the edited file"
        )
        xds_files = [p for p in (tmp_path / "xds").iterdir() if p.is_file()]
        assert all((p.stat().st_mode & 0o444) == 0o444 for p in xds_files)  # Envoy as any user reads them
        leftovers = [p.name for p in (tmp_path / "xds").iterdir() if p.name.startswith(".")]
        assert leftovers == []  # only whole files: temporaries were renamed into place
        stats = httpx.get(
            stack.envoy_admin_url + "/stats", params={"filter": "cluster_manager.cds.update_success"}
        ).text
        assert int(stats.strip().rpartition(" ")[2]) >= 2
    finally:
        stack.stop()
