"""Envoy reads listeners and clusters from the watched xDS directory: a new rendering,
written atomically, is picked up while Envoy runs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from extproc.config.load import load_file
from extproc.xds.render import write_xds
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_rendered_xds_files_are_picked_up_by_a_running_envoy(tmp_path: Path) -> None:
    config = {"providers": [{"name": "mock", "kind": "mock"}], "routes": [{"model": "*", "provider": "mock"}]}
    stack = GatewayStack(tmp_path, config).start()
    try:
        clusters = httpx.get(stack.envoy_admin_url + "/clusters").text
        assert "provider_extra::" not in clusters
        # The edit goes to a file of its own, so this test is the only writer of the xDS files (the
        # ext_proc's watcher would render the same edit, racing this rendering with its own version).
        running = yaml.safe_load((tmp_path / "gateway.yaml").read_text())
        running["providers"].append({"name": "extra", "kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"})
        edited = tmp_path / "edited" / "gateway.yaml"
        edited.parent.mkdir()
        edited.write_text(yaml.safe_dump(running))
        write_xds(load_file(edited, stack.env), tmp_path / "xds")
        assert wait_until(
            lambda: "provider_extra::" in httpx.get(stack.envoy_admin_url + "/clusters").text, timeout=10
        ), "Envoy did not load the new cluster"
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
