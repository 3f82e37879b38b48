"""Checks of deploy/compose.yaml against settings.py and the topic registry, as a list of problems.

The compose file cannot run here (no container engine), so it is read as data: its variables are
substituted as `docker compose` does, every `SPAKTOK_*` name must be a Settings field, each process
must get the settings its role reads (and they must validate, as the process would at start), and
the one-shot `topics` service must apply the registry with the cluster's replication and min ISR.
test_deploy_render.py runs these on the real file and on hand-made bad copies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from pydantic import ValidationError

from spaktok.infra.topics_plan import desired_topics
from spaktok.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
SETTING_FIELDS = frozenset(Settings.model_fields)
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")

# What each role reads from settings.py and must be told in production (defaults point at 127.0.0.1
# or a chDB file). From the code: processors/ read the broker and partitions; projections/ the broker,
# Postgres and ClickHouse; the API all of those plus its secrets, media URLs and the shared limiter;
# every process that may create a missing topic (topics.ensure_topics) its replication and min ISR.
KAFKA = {"broker", "partitions", "topic_replication", "min_insync_replicas"}
STORES = {"postgres_dsn", "clickhouse_dsn"}
MEDIA = {"media_link_secret", "hls_base_url", "recordings_base_url", "media_dir"}
ROLE_NEEDS: dict[str, set[str]] = {
    "topics": KAFKA,
    "worker": KAFKA,
    "project": KAFKA | STORES,
    "api": KAFKA
    | STORES
    | MEDIA
    | {
        "env",
        "stream_key_secret",
        "rtmp_ingest_url",
        "media_control_url",
        "media_hook_clients",
        "rate_limit_storage_uri",
    },
    "media": MEDIA,
}
WAITS_FOR_TOPICS = ("worker", "project", "api")
JWT_KEYS = {"SPAKTOK_JWT_SECRET", "SPAKTOK_JWT_JWKS_URL", "SPAKTOK_JWT_PUBLIC_KEY"}  # HS256 or RS256


def load(variables: Mapping[str, str], path: Path = COMPOSE) -> dict[str, Any]:
    """The compose file with its variables substituted (our values are plain: substituting the text
    before parsing is what compose's substitution of each value gives)."""
    loaded: dict[str, Any] = yaml.safe_load(interpolate(path.read_text(), variables))
    return loaded


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """`${X}`, `${X:-default}`, `${X-default}`, `${X:?error}`, `${X?error}` and `$$`, as compose does."""

    def one(match: re.Match[str]) -> str:
        name, operator, argument = match[1], match[2], match[3]
        value = variables.get(name)
        missing = value is None or (value == "" and operator is not None and operator.startswith(":"))
        if operator in (":-", "-"):
            return argument if missing else str(value)
        if operator in (":?", "?") and missing:
            raise ValueError(f"required variable {name} is not set: {argument}")
        return value or ""

    return VARIABLE.sub(one, text).replace("$$", "$")


def required_variables(text: str) -> set[str]:
    return {m[1] for m in VARIABLE.finditer(text) if m[2] in (":?", "?")}


def variable_problems(text: str) -> list[str]:
    """A `${SPAKTOK_*}` the file substitutes is passed on as that setting: it must be one."""
    return [
        f"${{{name}}} is not a setting (settings.py has no field {setting_name(name)!r})"
        for name in sorted({m[1] for m in VARIABLE.finditer(text)})
        if name.startswith("SPAKTOK_") and setting_name(name) not in SETTING_FIELDS
    ]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    pairs = dict(item.split("=", 1) for item in raw) if isinstance(raw, list) else dict(raw)
    return {key: str(value) for key, value in pairs.items()}


def role_of(service: Mapping[str, Any]) -> str | None:
    """The Spaktok process a service runs: the `spaktok` subcommand, or the media stage."""
    if (service.get("build") or {}).get("target") == "media":
        return "media"
    command = service.get("command") or []
    return command[0] if command and command[0] in ROLE_NEEDS else None


def setting_name(env_key: str) -> str:
    return env_key.removeprefix("SPAKTOK_").lower()


def problems(compose: Mapping[str, Any]) -> list[str]:
    """Everything wrong with the (substituted) topology, in words; empty when it is right."""
    services: dict[str, Any] = compose.get("services", {})
    found: list[str] = []
    envs = {name: environment(service) for name, service in services.items()}
    roles = {name: role_of(service) for name, service in services.items()}
    for name, env in envs.items():
        found += [
            f"{name}: {key} is not a setting (settings.py has no field {setting_name(key)!r})"
            for key in env
            if key.startswith("SPAKTOK_") and setting_name(key) not in SETTING_FIELDS
        ]
    for role in ROLE_NEEDS:
        if role not in roles.values():
            found.append(f"no service runs `spaktok {role}`" if role != "media" else "no media service")
    brokers = _kafka_brokers(services, found)
    for name, role in roles.items():
        if role is not None:
            found += _role_problems(name, role, envs[name], services[name], brokers)
    found += _topics_problems(services, envs, roles, brokers)
    found += _shared_problems(services, envs, roles)
    return found


def _kafka_brokers(services: Mapping[str, Any], found: list[str]) -> dict[str, dict[str, str]]:
    """Broker services by advertised address; the cluster must keep a write through one lost broker."""
    brokers = {}
    for name, service in services.items():
        env = environment(service)
        if "broker" not in env.get("KAFKA_PROCESS_ROLES", "").split(","):
            continue
        brokers[env.get("KAFKA_ADVERTISED_LISTENERS", name).split("://")[-1]] = env
        if env.get("KAFKA_DEFAULT_REPLICATION_FACTOR") != "3" or env.get("KAFKA_MIN_INSYNC_REPLICAS") != "2":
            found.append(f"{name}: a broker needs default.replication.factor 3 and min.insync.replicas 2")
    if len(brokers) < 3:
        found.append(f"{len(brokers)} Kafka brokers: replication 3 needs 3")
    return brokers


def _settings_of(env: Mapping[str, str]) -> Settings:
    """Settings as the process would read them from exactly this environment."""
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings()


def _role_problems(
    name: str, role: str, env: Mapping[str, str], service: Mapping[str, Any], brokers: Mapping[str, Any]
) -> list[str]:
    found = [
        f"{name} (spaktok {role}): needs SPAKTOK_{field.upper()}"
        for field in sorted(ROLE_NEEDS[role])
        if f"SPAKTOK_{field.upper()}" not in env
    ]
    if role == "api" and not JWT_KEYS & set(env):
        found.append(f"{name}: needs SPAKTOK_JWT_SECRET (HS256) or a JWKS URL / public key (RS256)")
    if role in WAITS_FOR_TOPICS:
        waits = (service.get("depends_on") or {}).get("topics", {})
        if not isinstance(waits, dict) or waits.get("condition") != "service_completed_successfully":
            found.append(
                f"{name}: must wait for the topics service (condition service_completed_successfully)"
            )
    try:
        settings = _settings_of(env)
    except ValidationError as exc:  # the reasons only: the input holds the secrets
        reasons = "; ".join(error["msg"] for error in exc.errors())
        return [*found, f"{name}: its settings do not validate: {reasons}"]
    if "broker" in ROLE_NEEDS[role] and "SPAKTOK_BROKER" in env:
        listed = set(settings.broker.split(","))
        if listed != set(brokers):
            found.append(f"{name}: SPAKTOK_BROKER lists {sorted(listed)}, the brokers are {sorted(brokers)}")
    if "clickhouse_dsn" in ROLE_NEEDS[role] and settings.is_embedded_clickhouse:
        found.append(
            f"{name}: SPAKTOK_CLICKHOUSE_DSN is chDB (one process only); give it the ClickHouse server"
        )
    return found


def _topics_problems(
    services: Mapping[str, Any],
    envs: Mapping[str, Any],
    roles: Mapping[str, str | None],
    brokers: Mapping[str, Any],
) -> list[str]:
    """The one-shot topics service applies every registry topic with replication 3 and min ISR 2."""
    names = [name for name, role in roles.items() if role == "topics"]
    if not names:
        return []
    name = names[0]
    if services[name].get("command") != ["topics", "apply"] or services[name].get("restart") != "no":
        return [f'{name}: must be a one-shot `spaktok topics apply` (restart: "no")']
    try:
        settings = _settings_of(envs[name])
    except ValidationError:
        return []  # said by _role_problems
    found = []
    for topic in desired_topics(settings):
        if topic.replication != 3 or topic.replication > len(brokers):
            found.append(
                f"{name}: {topic.name} would get replication {topic.replication}, the cluster needs 3"
            )
        min_insync = topic.config.get("min.insync.replicas")
        if min_insync != "2":
            found.append(f"{name}: {topic.name} would get min.insync.replicas {min_insync}, not 2")
        if found:
            break  # one topic says it for all
    return found


def _shared_problems(
    services: Mapping[str, Any], envs: Mapping[str, Any], roles: Mapping[str, str | None]
) -> list[str]:
    """What processes must agree on: partitions, the media link secret and directory."""
    found = []
    for key in ("SPAKTOK_PARTITIONS", "SPAKTOK_MEDIA_LINK_SECRET", "SPAKTOK_MEDIA_DIR"):
        values = {name: env[key] for name, env in envs.items() if key in env and roles[name]}
        if len(set(values.values())) > 1:
            found.append(f"{key} differs between services: {values}")
    partitions = next(
        (int(env["SPAKTOK_PARTITIONS"]) for env in envs.values() if "SPAKTOK_PARTITIONS" in env), 0
    )
    for name, role in roles.items():
        replicas = int(str((services[name].get("deploy") or {}).get("replicas", 1)))
        if role in ("worker", "project") and replicas > partitions:
            found.append(f"{name}: {replicas} replicas but {partitions} partitions: the rest would idle")
    return found
