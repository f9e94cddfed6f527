"""The deploy recipes agree with the code: settings, probe paths and ports, commands, state."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from prometheus_client import CollectorRegistry

from connector.config import Settings, load_settings
from connector.service.cli import run as run_command
from connector.service.http import HealthServer, Metrics
from connector.service.probe import probe_url

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
CONTAINERFILE = (DEPLOY / "Containerfile").read_text(encoding="utf-8")


def _instructions(text: str) -> list[tuple[str, str]]:
    """The Containerfile's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n\s*",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _manifests(name: str) -> list[dict[str, Any]]:
    with (KUBERNETES / name).open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def _only(name: str, kind: str) -> dict[str, Any]:
    docs = [d for d in _manifests(name) if d["kind"] == kind]
    assert len(docs) == 1, (name, kind)
    return docs[0]


def _container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _settings_from(path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for key in [k for k in os.environ if k.startswith("SEGSYNC_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings(path)


@pytest.fixture
def health_server() -> Iterator[HealthServer]:
    server = HealthServer("127.0.0.1", 0, Metrics(CollectorRegistry()), lambda: (True, {}))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- the image


def test_the_image_sets_no_setting_that_would_override_the_config() -> None:
    instructions = _instructions(CONTAINERFILE)  # comments dropped: they may name it
    assert not any("SEGSYNC_STORE__URL" in rest for _keyword, rest in instructions)
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    # The config file's path is the one SEGSYNC_ variable the image may set.
    assert set(re.findall(r"(SEGSYNC_\w+)=", env)) == {"SEGSYNC_CONFIG"}


def test_the_base_image_is_pinned() -> None:
    bases = [rest for keyword, rest in _instructions(CONTAINERFILE) if keyword == "FROM"]
    assert bases
    for base in bases:
        assert re.fullmatch(
            r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?|[\w./-]+@sha256:[0-9a-f]{64}",
            base,
        ), f"not pinned to an exact release or digest: {base}"


def test_the_image_keeps_state_in_a_volume_and_runs_unprivileged() -> None:
    instructions = _instructions(CONTAINERFILE)
    volumes = [rest for keyword, rest in instructions if keyword == "VOLUME"]
    assert volumes and "/var/lib/segsync" in volumes[0]
    user = [rest for keyword, rest in instructions if keyword == "USER"][-1]
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", user), "a numeric, non-root user"
    entry = [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"][-1]
    assert entry == '["segsync"]'


def test_every_file_the_image_copies_exists() -> None:
    for keyword, rest in _instructions(CONTAINERFILE):
        if keyword == "COPY":
            *sources, _target = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), source


def test_the_built_in_config_keeps_state_in_the_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings_from(DEPLOY / "container.toml", monkeypatch, {})
    assert settings.store.url.startswith("sqlite:////var/lib/segsync/")
    assert settings.service.host == "0.0.0.0"
    exposed = [rest for keyword, rest in _instructions(CONTAINERFILE) if keyword == "EXPOSE"]
    assert exposed == [str(settings.service.port)]


def test_the_health_check_asks_the_configured_port(
    health_server: HealthServer, tmp_path: Path
) -> None:
    check = [rest for keyword, rest in _instructions(CONTAINERFILE) if keyword == "HEALTHCHECK"]
    assert check and "connector.service.probe" in check[0]
    config = tmp_path / "config.toml"
    # The port comes from the config, as in the image (a wildcard host is asked on loopback).
    config.write_text(f'[service]\nhost = "0.0.0.0"\nport = {health_server.port}\n')
    probe = [sys.executable, "-m", "connector.service.probe", "--config", str(config)]
    alive = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False)
    assert alive.returncode == 0, alive.stderr
    health_server.stop()
    dead = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False)
    assert dead.returncode == 1
    assert dead.stderr.startswith("error: http://127.0.0.1:") and "Traceback" not in dead.stderr
    assert probe_url("::", 9464, "/healthz") == "http://127.0.0.1:9464/healthz"
    assert probe_url("::1", 9464, "/readyz") == "http://[::1]:9464/readyz"


# --------------------------------------------------------------------------- systemd


def test_the_systemd_unit_writes_only_its_state_directory() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "segsync.service", encoding="utf-8")
    service = unit["Service"]
    assert service["StateDirectory"] == "segsync"
    assert service["ProtectSystem"] == "strict"
    assert service["WorkingDirectory"] == "/var/lib/segsync"
    assert "/etc/segsync" in service["ReadOnlyPaths"]
    assert "ReadWritePaths" not in service  # StateDirectory is the writable place
    assert service["ExecStart"].split()[-1] == "run"
    assert service["Environment"] == "SEGSYNC_CONFIG=/etc/segsync/config.toml"
    assert "SEGSYNC_STORE__URL=" not in (DEPLOY / "segsync.service").read_text().replace(
        "# A SEGSYNC_STORE__URL", ""
    )


# --------------------------------------------------------------------------- Kubernetes


def test_every_manifest_parses() -> None:
    files = sorted(KUBERNETES.glob("*.yaml"))
    assert {f.name for f in files} >= {
        "configmap.yaml",
        "secret.example.yaml",
        "deployment.yaml",
        "cronjob.yaml",
    }
    for file in files:
        for doc in _manifests(file.name):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), file.name


def _environment(container: dict[str, Any], secret: dict[str, Any]) -> dict[str, str]:
    """The container's environment, with the example Secret's values filled in."""
    values = secret["stringData"]
    env = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            env[entry["name"]] = values[ref["key"]]
    return env


def _config_for(container: dict[str, Any], pod_spec: dict[str, Any], tmp_path: Path) -> Path:
    """Write the ConfigMap's file where the container's mount says, below ``tmp_path``."""
    configmap = _only("configmap.yaml", "ConfigMap")
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    (name,) = [n for n, v in volumes.items() if "configMap" in v]
    assert volumes[name]["configMap"]["name"] == configmap["metadata"]["name"]
    mount = mounts[name]
    assert mount["mountPath"] == "/etc/segsync/config.toml"
    path = tmp_path / "config.toml"
    path.write_text(configmap["data"][mount["subPath"]], encoding="utf-8")
    return path


def test_the_deployment_runs_two_replicas_on_postgresql_with_real_probes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, health_server: HealthServer
) -> None:
    deployment = _only("deployment.yaml", "Deployment")
    secret = _only("secret.example.yaml", "Secret")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    container = _container(pod)
    assert container["args"] == ["run"]
    env = _environment(container, secret)
    assert env["SEGSYNC_CONFIG"] == "/etc/segsync/config.toml"
    assert "SEGSYNC_STORE__URL" not in env
    settings = _settings_from(_config_for(container, pod, tmp_path), monkeypatch, env)
    assert settings.store.url.startswith("postgresql")
    assert settings.service.host == "0.0.0.0"
    assert settings.service.jobs, "the service needs jobs to schedule"
    hubspot = settings.connections["hubspot"]
    assert hubspot.secret("access_token") == secret["stringData"]["hubspot-access-token"]
    # The key file is where the Secret volume puts it.
    salesforce = settings.connections["salesforce"]
    key_path = str(getattr(salesforce, "private_key_file", ""))
    (secret_mount,) = [m for m in container["volumeMounts"] if m["name"] == "secrets"]
    (item,) = next(v for v in pod["volumes"] if v["name"] == "secrets")["secret"]["items"]
    assert key_path == f"{secret_mount['mountPath']}/{item['path']}"
    assert item["key"] in secret["stringData"]

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
        assert port == settings.service.port
        # The path is one the service really serves.
        status, _body, _kind = health_server.respond(path)
        assert status == 200, path
    assert health_server.respond("/nonexistent")[0] == 404
    service = _only("deployment.yaml", "Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > settings.service.shutdown_timeout_seconds


def test_the_cronjob_runs_every_job_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cronjob = _only("cronjob.yaml", "CronJob")
    secret = _only("secret.example.yaml", "Secret")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container = _container(pod)
    command, *flags = container["args"]
    assert command == run_command.name
    # Every flag the CronJob passes is an option of `segsync run`.
    options = {opt for p in run_command.params if isinstance(p, click.Option) for opt in p.opts}
    assert flags == ["--once"] and set(flags) <= options
    env = _environment(container, secret)
    settings = _settings_from(_config_for(container, pod, tmp_path), monkeypatch, env)
    assert settings.service.jobs


def test_the_deployment_and_cronjob_share_one_image_and_user() -> None:
    deployment = _only("deployment.yaml", "Deployment")["spec"]["template"]["spec"]
    cronjob = _only("cronjob.yaml", "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert _container(deployment)["image"] == _container(cronjob)["image"]
    user = [rest for keyword, rest in _instructions(CONTAINERFILE) if keyword == "USER"][-1]
    for pod in (deployment, cronjob):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert str(pod["securityContext"]["runAsUser"]) == user.split(":")[0]
