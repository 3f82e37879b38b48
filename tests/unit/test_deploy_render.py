"""deploy/compose.yaml and deploy/nginx-lb.conf, checked against settings.py, the topic registry and
the API's routes (no container engine here: the files are read as data). Every check is also shown
failing on a hand-made bad copy."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from compose_check import (
    COMPOSE,
    ENV_EXAMPLE,
    ROOT,
    interpolate,
    load,
    problems,
    required_variables,
    variable_problems,
)
from fastapi.routing import APIRoute, APIWebSocketRoute

from spaktok.api.routes import live
from spaktok.infra.topics_plan import desired_topics
from spaktok.settings import Settings

TEXT = COMPOSE.read_text()
# what an operator puts in deploy/.env: every required variable, the defaults for the rest
VARIABLES = {name: f"test-{name.lower().replace('_', '-')}-0123456789" for name in required_variables(TEXT)}
LB_CONF = ROOT / "deploy" / "nginx-lb.conf"


@pytest.fixture
def compose() -> dict[str, Any]:
    return load(VARIABLES)


def test_the_compose_file_has_no_problems(compose: dict[str, Any]) -> None:
    assert variable_problems(TEXT) == []
    assert problems(compose) == []


def test_the_topics_service_applies_the_registry_with_replication_3_and_min_insync_2(
    compose: dict[str, Any],
) -> None:
    topics_service = compose["services"]["topics"]
    assert topics_service["command"] == ["topics", "apply"]
    env = {k: str(v) for k, v in topics_service["environment"].items()}
    settings = Settings(**{k.removeprefix("SPAKTOK_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    desired = desired_topics(settings)
    assert {(d.replication, d.config["min.insync.replicas"]) for d in desired} == {(3, "2")}
    assert {d.partitions for d in desired} == {12, 1}  # SPAKTOK_PARTITIONS' default; Faust's leader: 1


def test_every_required_variable_is_in_env_example() -> None:
    listed = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines() if "=" in line}
    assert required_variables(TEXT) <= listed


def test_substitution_follows_compose() -> None:
    assert interpolate("${A:-x}/${B-y}/${C}/$$", {"A": "", "B": ""}) == "x//" + "/$"
    with pytest.raises(ValueError, match="required variable SECRET is not set: say so"):
        interpolate("${SECRET:?say so}", {"SECRET": ""})


# -- the bad cases: each check must be able to fail -------------------------------------------------


def bad(compose: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(compose)


def test_an_unknown_setting_is_refused(compose: dict[str, Any]) -> None:
    broken = bad(compose)
    broken["services"]["worker"]["environment"]["SPAKTOK_BROKERS"] = "kafka-1:9092"
    assert "worker: SPAKTOK_BROKERS is not a setting (settings.py has no field 'brokers')" in problems(broken)
    assert variable_problems("x: ${SPAKTOK_JWT_SECRETS:?}") == [
        "${SPAKTOK_JWT_SECRETS} is not a setting (settings.py has no field 'jwt_secrets')"
    ]


def test_a_worker_without_the_broker_is_refused(compose: dict[str, Any]) -> None:
    broken = bad(compose)
    del broken["services"]["worker"]["environment"]["SPAKTOK_BROKER"]
    assert "worker (spaktok worker): needs SPAKTOK_BROKER" in problems(broken)


def test_a_broker_list_missing_a_broker_is_refused(compose: dict[str, Any]) -> None:
    broken = bad(compose)
    broken["services"]["projector"]["environment"]["SPAKTOK_BROKER"] = "kafka-1:9092"
    assert any(p.startswith("projector: SPAKTOK_BROKER lists ['kafka-1:9092']") for p in problems(broken))


def test_replication_1_on_the_topics_service_is_refused(compose: dict[str, Any]) -> None:
    broken = bad(compose)
    broken["services"]["topics"]["environment"]["SPAKTOK_TOPIC_REPLICATION"] = 1
    broken["services"]["topics"]["environment"]["SPAKTOK_MIN_INSYNC_REPLICAS"] = 1
    found = problems(broken)
    assert any(
        re.match(r"topics: spaktok\.\S+ would get replication 1, the cluster needs 3", p) for p in found
    )
    assert any("would get min.insync.replicas 1, not 2" in p for p in found)


def test_a_broker_without_min_insync_2_is_refused(compose: dict[str, Any]) -> None:
    broken = bad(compose)
    broken["services"]["kafka-2"]["environment"]["KAFKA_MIN_INSYNC_REPLICAS"] = 1
    assert "kafka-2: a broker needs default.replication.factor 3 and min.insync.replicas 2" in problems(
        broken
    )


def test_a_projector_on_chdb_or_other_partitions_is_refused(compose: dict[str, Any]) -> None:
    broken = bad(compose)
    broken["services"]["projector"]["environment"]["SPAKTOK_CLICKHOUSE_DSN"] = "chdb:///data/ch"
    broken["services"]["worker"]["environment"]["SPAKTOK_PARTITIONS"] = "6"
    found = problems(broken)
    assert any(p.startswith("projector: SPAKTOK_CLICKHOUSE_DSN is chDB") for p in found)
    assert any(p.startswith("SPAKTOK_PARTITIONS differs between services") for p in found)


def test_an_api_with_placeholder_secrets_or_no_topics_wait_is_refused(compose: dict[str, Any]) -> None:
    broken = bad(compose)
    del broken["services"]["api"]["environment"]["SPAKTOK_STREAM_KEY_SECRET"]  # prod refuses the default
    del broken["services"]["api"]["depends_on"]["topics"]
    found = problems(broken)
    assert "api (spaktok api): needs SPAKTOK_STREAM_KEY_SECRET" in found
    assert any(p.startswith("api: its settings do not validate") and "real secrets" in p for p in found)
    assert "api: must wait for the topics service (condition service_completed_successfully)" in found


def test_a_missing_role_is_refused(compose: dict[str, Any]) -> None:
    broken = bad(compose)
    del broken["services"]["projector"]
    assert "no service runs `spaktok project`" in problems(broken)


# -- the load balancer ------------------------------------------------------------------------------


def lb_locations() -> list[tuple[str, str]]:
    """(location pattern, body) of nginx-lb.conf's locations (flat blocks: no nesting inside)."""
    text = LB_CONF.read_text()
    return [(m[1].strip(), m[2]) for m in re.finditer(r"location\s+([^{]+)\{([^}]*)\}", text)]


def location_for(path: str) -> str:
    """The body nginx would pick for `path`: the first matching regex, else the longest prefix."""
    for pattern, body in lb_locations():
        if pattern.startswith("~ ") and re.search(pattern[2:].strip(), path):
            return body
    prefixes = [(p, b) for p, b in lb_locations() if not p.startswith("~") and path.startswith(p)]
    return max(prefixes, key=lambda pb: len(pb[0]))[1]


def feed_paths(kind: type) -> list[str]:
    return [
        route.path.replace("{stream_id}", "st_abc123")
        for route in live.router.routes
        if isinstance(route, kind) and route.path.startswith("/v1/streams/")
    ]


def test_the_live_feed_is_upgraded_to_a_websocket_and_sse_is_unbuffered() -> None:
    [websocket] = feed_paths(APIWebSocketRoute)
    body = location_for(websocket)
    assert "proxy_set_header Upgrade $http_upgrade;" in body
    assert "proxy_set_header Connection $connection_upgrade;" in body
    assert "proxy_pass $api;" in body
    sse = [p for p in feed_paths(APIRoute) if p.endswith("/events")]
    assert sse and all("proxy_buffering off;" in location_for(p) for p in sse)
    assert "Upgrade" not in location_for("/v1/streams/st_abc123/comments")  # plain requests stay plain


def test_a_websocket_location_that_missed_the_feed_would_be_caught() -> None:
    [websocket] = feed_paths(APIWebSocketRoute)
    assert "Upgrade" not in location_for(websocket.replace("/live", "/livestream"))


def test_the_media_hooks_are_open_to_the_media_container_only(compose: dict[str, Any]) -> None:
    media_ip = compose["services"]["media"]["networks"]["backend"]["ipv4_address"]
    lb_ip = compose["services"]["lb"]["networks"]["backend"]["ipv4_address"]
    body = location_for("/v1/hooks/rtmp/publish")
    assert f"allow {media_ip};" in body and "deny all;" in body
    api_env = compose["services"]["api"]["environment"]
    assert api_env["SPAKTOK_MEDIA_HOOK_CLIENTS"] == f'["{media_ip}"]'
    assert api_env["FORWARDED_ALLOW_IPS"] == lb_ip  # so the API sees the media IP, not the balancer's


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_load_balancer_config(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(LB_CONF), "-g", f"pid {tmp_path}/nginx.pid;"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


# -- the media server -------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_the_media_entrypoint_renders_a_config_nginx_accepts(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the media service's environment from compose.yaml (its API URL made resolvable here)."""
    import runpy

    from spaktok.infra import nginx

    if nginx.find_rtmp_module() is None:
        pytest.skip("the nginx RTMP module is not installed")
    env = {k: str(v) for k, v in compose["services"]["media"]["environment"].items()}
    env.update(SPAKTOK_MEDIA_DIR=str(tmp_path / "media"), SPAKTOK_DATA_DIR=str(tmp_path))
    env["MEDIA_API_URL"] = "http://127.0.0.1:8000"  # "http://lb" resolves on the compose network only
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    execs: list[list[str]] = []
    monkeypatch.setattr("os.execvp", lambda file, argv: execs.append(argv))  # no nginx left running
    runpy.run_path(str(ROOT / "deploy" / "media_entrypoint.py"), run_name="__main__")
    [argv] = execs
    conf = Path(argv[argv.index("-c") + 1])
    assert "allow 172.28.0.0/16;" in conf.read_text()  # the API processes may start recordings
    result = subprocess.run([*argv[:5], "-t"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_a_control_client_that_is_not_an_address_is_refused(tmp_path: Path) -> None:
    from spaktok.infra import nginx

    with pytest.raises(ValueError, match="not an IP address or CIDR range"):
        nginx.render_config(
            prefix=tmp_path,
            layout=nginx.MediaLayout(tmp_path),
            api_url="http://127.0.0.1:8000",
            rtmp_port=1935,
            http_port=8080,
            secret="0123456789abcdef0123",
            hls_base_url="http://x/hls",
            recordings_base_url="http://x/recordings",
            control_clients=("all; allow 0.0.0.0/0",),
        )


def test_docs_topic_table_matches_the_registry() -> None:
    """docs/deploy.md's topic table is written by hand from the registry: it must not drift."""
    from spaktok.infra import topics
    from spaktok.infra.topics_plan import retention_words

    rows = re.findall(
        r"^\| `([^`]+)` \| [^|]+ \| (P|\d+) \| ([^|]+) \| (\w+) \|",
        (ROOT / "docs" / "deploy.md").read_text(),
        re.M,
    )
    documented = {
        name: (partitions, retention.strip(), cleanup) for name, partitions, retention, cleanup in rows
    }
    registry = {
        spec.name: (
            str(spec.partitions) if spec.partitions else "P",
            retention_words(spec.retention_ms),
            spec.cleanup,
        )
        for spec in topics.APPLIED_TOPICS
    }
    assert documented == registry
