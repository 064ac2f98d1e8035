"""docker-compose.yml against the compose-spec JSON schema (the copy check-jsonschema ships), and
what the schema cannot see: dependencies and volumes that exist, two nodes on one set of
settings behind the only published way in, Redis with an append-only file, and a proxy that
balances both nodes round-robin with health checks (deploy/Caddyfile, read by Caddy itself
through ``caddy adapt`` and ``caddy validate``). No Docker engine runs the suite."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from testkit.servers import ROOT

COMPOSE = ROOT / "docker-compose.yml"
NODES = ("idp1", "idp2")
BASE_URL = "https://id.example.com"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema_file = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)  # type: ignore[no-any-return]


def _errors(validator: jsonschema.protocols.Validator, document: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_the_file_follows_the_compose_specification(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    assert _errors(validator, compose) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "idp1", "depends_onn"), {"postgres": {}}),  # a misspelt key
        (("services", "redis", "command"), 6379),  # a string or a list
        (("services", "proxy", "depends_on", "idp1", "condition"), "service_ready"),
    ],
)
def test_the_schema_refuses_a_broken_file(
    compose: dict[str, Any],
    validator: jsonschema.protocols.Validator,
    path: tuple[str, ...],
    value: object,
) -> None:
    broken = copy.deepcopy(compose)
    parent = broken
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    assert _errors(validator, broken)


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    needs = service.get("depends_on", {})
    return {name: {} for name in needs} if isinstance(needs, list) else dict(needs)


def test_dependencies_and_volumes_exist(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    for name, service in services.items():
        for needed, how in _depends_on(service).items():
            assert needed in services, f"{name} depends on {needed}, which is no service"
            if how.get("condition") == "service_healthy":
                # The nodes' healthcheck is the image's (test_dockerfile checks it is there).
                target = services[needed]
                assert "healthcheck" in target or "build" in target, f"{needed}: no healthcheck"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"
    assert set(_depends_on(services["proxy"])) >= set(NODES)


def _key(node: yaml.Node, key: str) -> yaml.Node:
    assert isinstance(node, yaml.MappingNode)
    (found,) = [value for k, value in node.value if k.value == key]
    return found


def test_both_nodes_share_one_set_of_settings(services: dict[str, dict[str, Any]]) -> None:
    assert {name for name, s in services.items() if "build" in s} == set(NODES)
    # The same anchored mapping is merged into both environments, not two copies kept in step.
    root = yaml.compose(COMPOSE.read_text(), Loader=yaml.SafeLoader)
    merged = [_key(_key(_key(_key(root, "services"), n), "environment"), "<<") for n in NODES]
    assert merged[0] is merged[1], "the nodes' settings are not one anchored mapping"
    env1, env2 = (dict(services[n]["environment"]) for n in NODES)
    assert [env1.pop("IDP_NODE_NAME"), env2.pop("IDP_NODE_NAME")] == list(NODES)
    assert env1 == env2
    assert services[NODES[0]]["build"] == services[NODES[1]]["build"] == "."
    assert env1["IDP_TRUSTED_PROXIES"] == "1"
    assert env1["IDP_METRICS_TOKEN"].startswith("${IDP_METRICS_TOKEN")
    assert urlsplit(env1["IDP_REDIS_URL"]).hostname in services
    assert urlsplit(env1["IDP_DATABASE_URL"]).hostname in services


def test_only_the_proxy_is_reachable_from_outside(services: dict[str, dict[str, Any]]) -> None:
    # The nodes trust one proxy hop: reached directly, a client could forge its address.
    for name, service in services.items():
        for port in service.get("ports", []):
            assert name == "proxy" or str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"
    assert services["proxy"]["ports"]


def test_redis_keeps_what_it_holds_across_a_restart(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    command = redis["command"]
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert command[0] == "redis-server"
    assert options["--appendonly"] == "yes" and options["--appendfsync"] == "everysec"
    assert any(v.split(":")[1] == "/data" for v in redis["volumes"]), "the AOF is not on a volume"


@pytest.fixture(scope="module")
def caddy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment ``caddy`` runs in: IDP_BASE_URL set, its data and config in a temp dir."""
    if shutil.which("caddy") is None:
        pytest.fail("caddy is missing: scripts/test installs Debian's caddy")
    home = tmp_path_factory.mktemp("caddy")
    env = {**os.environ, "IDP_BASE_URL": BASE_URL, "HOME": str(home)}
    env.update(XDG_DATA_HOME=str(home), XDG_CONFIG_HOME=str(home))
    yield env


def _handlers(node: object, name: str) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("handler") == name:
            yield node
        for value in node.values():
            yield from _handlers(value, name)
    elif isinstance(node, list):
        for value in node:
            yield from _handlers(value, name)


def test_the_proxy_balances_both_nodes_round_robin(
    services: dict[str, dict[str, Any]], caddy: dict[str, str]
) -> None:
    proxy = services["proxy"]
    assert proxy["environment"]["IDP_BASE_URL"].startswith("${IDP_BASE_URL")
    (caddyfile,) = [
        v.split(":")[0] for v in proxy["volumes"] if v.split(":")[1] == "/etc/caddy/Caddyfile"
    ]
    config = ["--config", str(ROOT / caddyfile), "--adapter", "caddyfile"]
    for command in ("validate", "adapt"):  # validate: the modules accept their settings too
        result = subprocess.run(
            ["caddy", command, *config], env=caddy, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert json.dumps(document).count(urlsplit(BASE_URL).hostname or "-") == 1, "no site address"

    (balancer,) = _handlers(document, "reverse_proxy")
    ports = {name: services[name]["expose"][0] for name in NODES}
    assert sorted(u["dial"] for u in balancer["upstreams"]) == [f"{n}:{ports[n]}" for n in NODES]
    # Round-robin and nothing else: no cookie, IP or header affinity.
    assert balancer["load_balancing"]["selection_policy"] == {"policy": "round_robin"}
    assert balancer["health_checks"]["active"]["uri"] in ("/healthz", "/readyz")
    assert balancer["health_checks"]["passive"]["fail_duration"] > 0
