"""The shipped deployment files, checked offline (no Docker, no cluster): docker-compose.yml with
deploy/prometheus.yml, and every manifest in deploy/k8s/. Each port, probe and scrape target must be
one the gateway.yaml it runs actually serves, loaded and rendered by the gateway's own code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from extproc.__main__ import main as extproc_main
from extproc.config.load import load_file, load_text
from extproc.config.model import GatewayConfig
from extproc.observe.admin import build_admin_app
from extproc.xds.render import render_listeners
from extproc.xds.render_ready import EXTPROC_METRICS_PATH, READY_PATH, STATS_PATH

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
MANIFESTS = sorted((REPO / "deploy" / "k8s").glob("*.yaml"))
# The oldest Kubernetes the manifests are written for: native sidecars (init containers with
# `restartPolicy: Always`) are on by default from 1.29.
KUBERNETES_VERSION = "1.29"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
GATEWAY_IMAGE = "llm-gateway:"


# --- what a loaded gateway.yaml serves -----------------------------------------------------------


def bound_addresses(config: GatewayConfig) -> dict[int, str]:
    """Every TCP port the gateway binds (Envoy's listeners, its ready address, the ext_proc's admin) -> address."""
    bound = {config.extproc.admin_port: config.extproc.admin_address}
    for listener in render_listeners(config, Path("secrets")):
        for address in [listener["address"]] + [extra["address"] for extra in listener.get("additional_addresses", [])]:
            bound[address["socket_address"]["port_value"]] = address["socket_address"]["address"]
    return bound


async def _never_ready() -> bool:
    return False


def http_targets(config: GatewayConfig) -> set[tuple[int, str]]:
    """(port, path) a probe or a scraper may GET: the ext_proc admin's routes and Envoy's ready port."""
    routes = build_admin_app(_never_ready).router.routes()
    targets = {(config.extproc.admin_port, r.resource.canonical) for r in routes if r.method == "GET" and r.resource}
    if (ready := config.envoy.ready_port) is not None:
        targets |= {(ready, READY_PATH), (ready, STATS_PATH), (ready, EXTPROC_METRICS_PATH)}
    return targets


def assert_served_inside(config: GatewayConfig, port: int, path: str) -> None:
    """`port` serves GET `path` to a check run inside the container (on any address, loopback too)."""
    assert port in bound_addresses(config), f"port {port} is not one the gateway binds"
    assert (port, path) in http_targets(config), f"GET {path} is not served on port {port}"


def assert_reachable_from_outside(config: GatewayConfig, port: int, path: str | None = None) -> None:
    """`port` is bound beyond loopback (the kubelet, other containers and the host reach the pod's
    or container's own address), and serves `path` when one is given."""
    bound = bound_addresses(config)
    assert port in bound, f"port {port} is not one the gateway binds: {sorted(bound)}"
    assert bound[port] not in LOOPBACK, f"port {port} is bound on {bound[port]} only"
    if path is not None:
        assert (port, path) in http_targets(config), f"GET {path} is not served on port {port}"


def files_named(raw: Any) -> list[str]:
    """Every `*_file` value of a raw gateway.yaml mapping (api_key_file, keys_file, password_file, ...)."""
    if isinstance(raw, dict):
        own = [value for key, value in raw.items() if key.endswith("_file") and isinstance(value, str)]
        return own + files_named(list(raw.values()))
    if isinstance(raw, list):
        return [f for item in raw for f in files_named(item)]
    return []


def image_env() -> dict[str, str]:
    """The gateway image's ENV (Dockerfile): the environment every gateway container loads its config in."""
    dockerfile = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    pairs = [word for line in re.findall(r"^ENV (.+)$", dockerfile, re.MULTILINE) for word in line.split()]
    return dict(pair.split("=", 1) for pair in pairs)


def under(path: str, directory: str) -> bool:
    return PurePosixPath(path).is_relative_to(PurePosixPath(directory))


# --- docker-compose.yml ----------------------------------------------------------------------------


def compose_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a path relative to the repository, or a named volume)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = source
    return mounts


def compose_source(source: str) -> Path | None:
    """The host path of a bind mount, None for a named volume."""
    return REPO / source if source.startswith((".", "/")) else None


def host_path_of(service: dict[str, Any], container_path: str) -> Path:
    """The repository file a service sees at `container_path`, through a file or a directory mount."""
    for target, source in compose_mounts(service).items():
        host = compose_source(source)
        if host is not None and under(container_path, target):
            return host / PurePosixPath(container_path).relative_to(target)
    raise AssertionError(f"nothing is mounted at {container_path}")


def compose_gateway_config() -> GatewayConfig:
    gateway = COMPOSE["services"]["gateway"]
    command = gateway["command"]
    assert command[:2] == ["run", "--config"], "the gateway runs Envoy and the ext_proc: `extproc run`"
    literal_env = {k: str(v) for k, v in gateway.get("environment", {}).items() if "${" not in str(v)}
    return load_file(host_path_of(gateway, command[2]), env={**image_env(), **literal_env})


def urls_in(command: list[str]) -> list[str]:
    return re.findall(r"https?://[^\s'\"]+", " ".join(command))


def test_compose_references_files_that_exist_and_declares_its_volumes() -> None:
    for name, service in COMPOSE["services"].items():
        if "build" in service:
            build = service["build"] if isinstance(service["build"], dict) else {"context": service["build"]}
            context = REPO / build["context"]
            assert context.is_dir(), name
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        for target, source in compose_mounts(service).items():
            host = compose_source(source)
            if host is None:
                assert source in COMPOSE.get("volumes", {}), f"{name}: volume {source} is not declared"
            else:
                assert host.exists(), f"{name}: {source} (mounted at {target}) does not exist"


def test_every_compose_service_has_a_healthcheck() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for name, service in COMPOSE["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        if "build" in service:  # our image has python, no curl
            assert test[1] == "python" and re.search(r"^FROM python:", dockerfile, re.MULTILINE), name


def test_compose_gateway_ports_and_healthcheck_are_ones_its_gateway_yaml_serves() -> None:
    config = compose_gateway_config()
    gateway = COMPOSE["services"]["gateway"]
    for mapping in gateway["ports"]:
        assert_reachable_from_outside(config, int(str(mapping).rsplit(":", 1)[-1]))
    exposed = re.search(r"^EXPOSE (.+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert exposed is not None
    for port in exposed.group(1).split():
        assert_reachable_from_outside(config, int(port))
    # The healthcheck runs inside the container: loopback is enough.
    urls = [urlsplit(url) for url in urls_in(gateway["healthcheck"]["test"])]
    assert urls
    for url in urls:
        assert url.port is not None and url.hostname in LOOPBACK
        assert_served_inside(config, url.port, url.path)


def test_compose_binds_the_extproc_admin_to_loopback() -> None:
    """/status and POST /reload are for the operator inside the container; no probe from outside
    needs the admin (the healthcheck runs inside, Prometheus scrapes Envoy's ready port)."""
    config = compose_gateway_config()
    assert config.extproc.admin_address in LOOPBACK
    published = [int(str(mapping).rsplit(":", 1)[-1]) for mapping in COMPOSE["services"]["gateway"]["ports"]]
    assert config.extproc.admin_port not in published


def test_compose_gateway_finds_its_keys_file_and_redis() -> None:
    config = compose_gateway_config()
    gateway = COMPOSE["services"]["gateway"]
    config_dir = PurePosixPath(gateway["command"][2]).parent
    keys_file = config.auth.keys_file
    assert keys_file is not None
    # Relative to the config file: beside it in the container too.
    assert host_path_of(gateway, str(config_dir / keys_file.name)).is_file()
    if config.store.redis is not None:
        host = urlsplit(config.store.redis.url).hostname
        assert host in COMPOSE["services"], f"the store's Redis {host} is not a compose service"
        assert host in gateway.get("depends_on", {})


def test_prometheus_scrapes_both_halves_of_the_gateway_at_ports_that_serve_them() -> None:
    config = compose_gateway_config()
    prometheus = COMPOSE["services"]["prometheus"]
    scrape = yaml.safe_load(host_path_of(prometheus, "/etc/prometheus/prometheus.yml").read_text())
    scraped = set()
    for job in scrape["scrape_configs"]:
        for group in job["static_configs"]:
            path = group.get("labels", {}).get("__metrics_path__", job.get("metrics_path", "/metrics"))
            for target in group["targets"]:
                host, _, port = target.rpartition(":")
                assert host in COMPOSE["services"], f"{target}: no compose service {host}"
                assert host == "gateway", f"{target}: only the gateway is scraped"
                assert_reachable_from_outside(config, int(port), path)
                scraped.add((int(port), path))
    assert scraped == {(config.envoy.ready_port, EXTPROC_METRICS_PATH), (config.envoy.ready_port, STATS_PATH)}


# --- deploy/k8s ------------------------------------------------------------------------------------


@dataclass
class Manifest:
    """One deploy/k8s file: its documents, the embedded gateway.yaml and the gateway's pod."""

    path: Path
    documents: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.documents if doc["kind"] == kind]

    @property
    def config_map(self) -> dict[str, Any]:
        (config_map,) = self.of_kind("ConfigMap")
        return config_map

    @property
    def config_text(self) -> str:
        return self.config_map["data"]["gateway.yaml"]

    @property
    def pod_template(self) -> dict[str, Any]:
        (deployment,) = self.of_kind("Deployment")
        return deployment["spec"]["template"]

    @property
    def pod(self) -> dict[str, Any]:
        return self.pod_template["spec"]

    def containers(self) -> list[dict[str, Any]]:
        """Init containers (the render step, native sidecars) and the others, in start order."""
        return self.pod.get("initContainers", []) + self.pod["containers"]

    def container(self, name: str) -> dict[str, Any]:
        return next(c for c in self.containers() if c["name"] == name)

    def gateway_containers(self) -> list[dict[str, Any]]:
        return [c for c in self.containers() if c["image"].startswith(GATEWAY_IMAGE)]

    def config_readers(self) -> list[dict[str, Any]]:
        """The containers that load gateway.yaml (`--config`): the render step and the ext_proc."""
        return [c for c in self.gateway_containers() if "--config" in c.get("args", [])]

    def volume(self, name: str) -> dict[str, Any]:
        return next(v for v in self.pod["volumes"] if v["name"] == name)

    def mount_of(self, container: dict[str, Any], path: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The mount (and its volume) under which `path` lies in `container`, the deepest one."""
        mounts = [m for m in container.get("volumeMounts", []) if under(path, m["mountPath"])]
        assert mounts, f"{container['name']}: nothing is mounted at {path}"
        mount = max(mounts, key=lambda m: len(m["mountPath"]))
        return mount, self.volume(mount["name"])


def manifest(path: Path) -> Manifest:
    return Manifest(path, [doc for doc in yaml.safe_load_all(path.read_text()) if doc])


def load_embedded(manifest: Manifest, scratch: Path) -> tuple[GatewayConfig, Path]:
    """The embedded gateway.yaml, loaded as `extproc check` does, with stand-ins for the files
    the pod's secret mounts provide; returns the config and the file written."""
    text = manifest.config_text
    for name in files_named(yaml.safe_load(text)):
        stand_in = scratch / name.lstrip("/")
        stand_in.parent.mkdir(parents=True, exist_ok=True)
        stand_in.write_text("clients: []\n" if name.endswith(".yaml") else "stand-in-secret\n")
        text = text.replace(name, str(stand_in))
    path = scratch / "gateway.yaml"
    path.write_text(text)
    return load_text(text, image_env(), scratch), path


@pytest.fixture(params=MANIFESTS, ids=lambda path: path.name)
def k8s(request: pytest.FixtureRequest) -> Manifest:
    return manifest(request.param)


@pytest.fixture
def embedded(k8s: Manifest, tmp_path: Path) -> GatewayConfig:
    return load_embedded(k8s, tmp_path)[0]


def test_there_are_a_sidecar_and_a_shared_manifest() -> None:
    assert {path.name for path in MANIFESTS} >= {"sidecar.yaml", "shared.yaml"}


def test_every_k8s_document_is_valid_for_the_kubernetes_api(k8s: Manifest) -> None:
    for document in k8s.documents:
        # strict: an unknown or misplaced field is an error, as `kubectl apply --validate=strict` says.
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_embedded_gateway_yaml_passes_extproc_check_with_envoy(k8s: Manifest, tmp_path: Path) -> None:
    path = load_embedded(k8s, tmp_path)[1]
    assert extproc_main(["check", str(path), "--envoy"]) == 0


def test_config_map_is_mounted_as_a_directory_where_the_config_flag_points(k8s: Manifest) -> None:
    readers = k8s.config_readers()
    assert {c["args"][0] for c in readers} >= {"render", "serve"}
    for container in readers:
        config_path = container["args"][container["args"].index("--config") + 1]
        mount, volume = k8s.mount_of(container, config_path)
        # A subPath mount never sees the ConfigMap's updates: no reload.
        assert "subPath" not in mount and "subPathExpr" not in mount
        assert volume.get("configMap", {}).get("name") == k8s.config_map["metadata"]["name"]
        assert PurePosixPath(config_path).parent == PurePosixPath(mount["mountPath"])
        assert PurePosixPath(config_path).name in k8s.config_map["data"]
    for container in k8s.containers():
        for mount in container.get("volumeMounts", []):
            assert "subPath" not in mount, f"{container['name']}: {mount['name']} is mounted with subPath"


def test_secret_mounts_provide_every_file_the_config_names(k8s: Manifest) -> None:
    names = files_named(yaml.safe_load(k8s.config_text))
    assert names, "provider keys come from files (api_key_file), not the environment"
    for container in k8s.config_readers():
        for name in names:
            volume = k8s.mount_of(container, name)[1]
            assert "secret" in volume, f"{container['name']}: {name} is not in a Secret mount"


def test_probes_and_declared_ports_are_ones_the_embedded_config_serves(k8s: Manifest, embedded: GatewayConfig) -> None:
    probed = set()
    for container in k8s.containers():
        named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for port in named.values():
            assert_reachable_from_outside(embedded, port)
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in container:
                get = container[kind]["httpGet"]
                port = named.get(get["port"], get["port"])
                assert_reachable_from_outside(embedded, port, get["path"])
                probed.add((container["name"], kind, port, get["path"]))
    admin, ready = embedded.extproc.admin_port, embedded.envoy.ready_port
    assert ("llm-gateway-extproc", "readinessProbe", admin, "/readyz") in probed
    assert ("llm-gateway-extproc", "livenessProbe", admin, "/healthz") in probed
    assert ("llm-gateway-envoy", "readinessProbe", ready, READY_PATH) in probed


def test_prometheus_annotations_name_metrics_the_embedded_config_serves(k8s: Manifest, embedded: GatewayConfig) -> None:
    annotated = [k8s.pod_template["metadata"]] + [service["metadata"] for service in k8s.of_kind("Service")]
    scraped = set()
    for metadata in annotated:
        annotations = metadata.get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            port, path = int(annotations["prometheus.io/port"]), annotations["prometheus.io/path"]
            assert_reachable_from_outside(embedded, port, path)
            scraped.add((port, path))
    assert (embedded.extproc.admin_port, "/metrics") in scraped


def test_service_ports_lead_to_ports_the_pod_serves(k8s: Manifest, embedded: GatewayConfig) -> None:
    named = {p["name"]: p["containerPort"] for c in k8s.containers() for p in c.get("ports", [])}
    for service in k8s.of_kind("Service"):
        assert service["spec"]["selector"] == k8s.pod_template["metadata"]["labels"]
        for port in service["spec"]["ports"]:
            assert_reachable_from_outside(embedded, named.get(port["targetPort"], port["targetPort"]))


def test_unix_sockets_and_xds_lie_in_a_volume_only_the_gateway_containers_mount(
    k8s: Manifest, embedded: GatewayConfig
) -> None:
    extproc, envoy = k8s.container("llm-gateway-extproc"), k8s.container("llm-gateway-envoy")
    assert embedded.envoy.admin_socket, "Envoy's admin is a Unix socket"
    sockets = [a.removeprefix("unix:") for a in embedded.extproc.grpc_addresses()] + [embedded.envoy.admin_socket]
    assert all(s.startswith("/") for s in sockets), "the ext_proc listens on Unix sockets"
    for path in [*sockets, embedded.envoy.xds_dir]:
        volumes = {k8s.mount_of(container, path)[1]["name"] for container in (extproc, envoy)}
        assert len(volumes) == 1, f"{path}: the two gateway containers must share one volume"
        (volume,) = volumes
        assert "emptyDir" in k8s.volume(volume)
        for other in k8s.containers():
            if other not in k8s.gateway_containers():
                assert volume not in [m["name"] for m in other.get("volumeMounts", [])], other["name"]


def test_envoy_starts_from_the_bootstrap_the_render_step_writes(k8s: Manifest, embedded: GatewayConfig) -> None:
    envoy = k8s.container("llm-gateway-envoy")
    assert envoy["command"] == ["envoy"]  # the gateway image's Envoy, the one `extproc check --envoy` ran
    bootstrap = envoy["args"][envoy["args"].index("-c") + 1]
    assert PurePosixPath(bootstrap) == PurePosixPath(embedded.envoy.xds_dir).parent / "envoy-bootstrap.yaml"
    k8s.mount_of(envoy, bootstrap)


def test_gateway_containers_run_as_one_unprivileged_user_with_a_read_only_root(
    k8s: Manifest, embedded: GatewayConfig
) -> None:
    image_uid = re.search(r"useradd --uid (\d+)", (REPO / "Dockerfile").read_text())
    assert image_uid is not None
    for container in k8s.gateway_containers():
        context = container["securityContext"]
        assert context["runAsUser"] == int(image_uid.group(1)), container["name"]  # one uid: Envoy reads 0600 keys
        assert context["runAsNonRoot"] is True and context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True and context["capabilities"]["drop"] == ["ALL"]
        assert "memory" in container["resources"]["limits"] and container["resources"]["requests"]
    # What the ext_proc writes with a read-only root: Envoy's files, and /tmp (`envoy --mode validate`).
    for container in k8s.config_readers():
        for path in (embedded.envoy.xds_dir, "/tmp"):
            volume = k8s.mount_of(container, path)[1]
            assert "emptyDir" in volume, f"{container['name']}: {path} is not writable"


def test_pod_shutdown_outlasts_the_ext_procs_grace_and_drains_through_the_admin_socket(
    k8s: Manifest, embedded: GatewayConfig
) -> None:
    grace = k8s.pod["terminationGracePeriodSeconds"]
    assert grace > embedded.extproc.grace_period_s
    for container in k8s.containers():
        command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
        if command and command[:2] == ["python", "-c"]:
            code = command[2]
            compile(code, container["name"], "exec")
            assert f'EnvoyAdmin(0, socket="{embedded.envoy.admin_socket}")' in code
            waits = [int(seconds) for seconds in re.findall(r"(?:sleep|drain)\((\d+)\)", code)]
            assert waits and sum(waits) + embedded.extproc.grace_period_s < grace


def test_the_sidecar_renders_first_then_runs_the_gateway_as_native_sidecars_beside_the_app() -> None:
    sidecar = manifest(REPO / "deploy" / "k8s" / "sidecar.yaml")
    init = sidecar.pod["initContainers"]
    assert init[0]["args"][0] == "render" and "restartPolicy" not in init[0]
    # Native sidecars: started before the app, stopped after it (its calls in flight finish).
    assert {c["name"]: c.get("restartPolicy") for c in init[1:]} == {
        "llm-gateway-extproc": "Always",
        "llm-gateway-envoy": "Always",
    }
    assert [c["name"] for c in sidecar.pod["containers"]] == ["app"]
    # The app starts once Envoy answers /ready.
    assert sidecar.container("llm-gateway-envoy")["startupProbe"]["httpGet"]["path"] == READY_PATH


def test_the_extproc_admin_leaves_loopback_only_for_the_kubelets_probes(k8s: Manifest, embedded: GatewayConfig) -> None:
    """The kubelet probes the pod's address, so /healthz and /readyz need the admin beyond loopback;
    nothing else justifies it (/status and POST /reload are the operator's)."""
    if embedded.extproc.admin_address in LOOPBACK:
        return
    probed = set()
    for container in k8s.containers():
        named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in container:
                probed.add(named.get(container[kind]["httpGet"]["port"], container[kind]["httpGet"]["port"]))
    assert embedded.extproc.admin_port in probed
