"""Every file in examples/ is a gateway.yaml that `extproc check --envoy` accepts, given what it
names outside itself (environment variables, files beside it). Each is copied into a scratch
directory with those files; an example without a setup here fails, so none goes unchecked."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from tests.support.cli import REPO, run_cli

EXAMPLES = REPO / "examples"

# Prepares the copied example (its directory, its path) and returns the environment it needs.
Setup = Callable[[Path, Path], dict[str, str]]


def _keys(*names: str) -> Setup:
    """An example that needs only provider keys (and other secrets) in the environment."""
    return lambda directory, config: {name: f"test-secret-{name.lower()}" for name in names}


def _tls_listener(directory: Path, config: Path) -> dict[str, str]:
    """The listener's certificate and key, and the private CA of the self-hosted provider, under certs/."""
    certs = directory / "certs"
    certs.mkdir()
    gateway = trustme.CA().issue_cert("gateway.example.com")
    gateway.cert_chain_pems[0].write_to_path(str(certs / "gateway.pem"))
    for pem in gateway.cert_chain_pems[1:]:
        pem.write_to_path(str(certs / "gateway.pem"), append=True)
    gateway.private_key_pem.write_to_path(str(certs / "gateway-key.pem"))
    trustme.CA().cert_pem.write_to_path(str(certs / "internal-ca.pem"))
    return {"VLLM_API_KEY": "test-secret-vllm"}


def _sidecar(directory: Path, config: Path) -> dict[str, str]:
    """The pod's /run (sockets, xDS files, the mounted key) moved under the scratch directory."""
    run = directory / "run"
    config.write_text(config.read_text().replace("/run/", f"{run}/"))
    key = run / "secrets" / "openai" / "key"
    key.parent.mkdir(parents=True)
    key.write_text("test-secret-openai\n")
    return {}


def _tracing(directory: Path, config: Path) -> dict[str, str]:
    """The collector's headers file beside the config."""
    (directory / "otlp-headers").write_text("authorization: Bearer test-secret-collector\n")
    return {"OPENAI_API_KEY": "test-secret-openai"}


def _federated_google(directory: Path, config: Path) -> dict[str, str]:
    """The mounted workload identity federation configuration (external_account) moved beside the config."""
    mount = directory / "google"
    config.write_text(config.read_text().replace("/var/run/secrets/google/", f"{mount}/"))
    mount.mkdir()
    (mount / "credential-config.json").write_text(
        '{"type": "external_account", "audience": "//iam.googleapis.com/projects/1/locations/global/'
        'workloadIdentityPools/eks/providers/eks", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt", '
        '"token_url": "https://sts.googleapis.com/v1/token", "credential_source": {"file": "/var/run/token"}}'
    )
    return {"OPENAI_API_KEY": "test-secret-openai"}


SETUPS: dict[str, Setup] = {
    "single-provider.yaml": _keys("OPENAI_API_KEY"),
    "openai-gemini-failover.yaml": _keys("OPENAI_API_KEY", "GEMINI_API_KEY"),
    "multi-tenant-redis.yaml": _keys("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "REDIS_PASSWORD", "GATEWAY_ADMIN_TOKEN"),
    "jwt.yaml": _keys("OPENAI_API_KEY"),
    "budgets.yaml": _keys("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GATEWAY_ADMIN_TOKEN"),
    "tls-listener.yaml": _tls_listener,
    "sidecar.yaml": _sidecar,
    "bedrock-irsa.yaml": _keys(),  # Envoy signs with the pod's web identity: no secret is named
    "spend.yaml": _keys("OPENAI_API_KEY", "ANTHROPIC_API_KEY"),
    "tracing.yaml": _tracing,
    "vertex-workload-identity.yaml": _keys("OPENAI_API_KEY"),
    "pool-bedrock-vertex-openai.yaml": _federated_google,
}


def _example_files() -> list[str]:
    return sorted(path.name for path in EXAMPLES.iterdir() if path.is_file())


def _environment(extra: dict[str, str]) -> dict[str, str]:
    """The test run's environment without the gateway's overrides (they would change what is checked)."""
    base = {name: value for name, value in os.environ.items() if not name.startswith("GATEWAY_")}
    return {**base, **extra}


def test_every_file_in_examples_is_checked() -> None:
    assert _example_files(), "examples/ is empty"
    assert set(_example_files()) == set(SETUPS), (
        "each file in examples/ needs a setup in SETUPS (tests/unit/test_examples.py), and each setup a file"
    )


@pytest.mark.parametrize("name", _example_files())
def test_example_passes_extproc_check_with_envoy(name: str, tmp_path: Path) -> None:
    setup = SETUPS.get(name)
    assert setup is not None, f"examples/{name} has no setup in SETUPS (tests/unit/test_examples.py)"
    config = tmp_path / name
    shutil.copyfile(EXAMPLES / name, config)
    env = _environment(setup(tmp_path, config))
    result = run_cli("check", str(config), "--envoy", env=env, timeout=120)
    assert result.returncode == 0, f"examples/{name}:\n{result.stderr}"
    assert result.stdout.strip() == f"{config}: ok"


# bedrock-irsa.yaml names no secret at all: Envoy gets the pod's web identity itself
@pytest.mark.parametrize(
    "name", [name for name in _example_files() if name not in ("sidecar.yaml", "bedrock-irsa.yaml")]
)
def test_example_refuses_to_load_without_its_secrets(name: str, tmp_path: Path) -> None:
    """Keys are never in the file: without the environment (or files) an example names, it is refused."""
    config = tmp_path / name
    shutil.copyfile(EXAMPLES / name, config)
    result = run_cli("check", str(config), env=_environment({}))
    assert result.returncode == 2
    assert "is not set" in result.stderr or "not found" in result.stderr
