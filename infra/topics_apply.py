"""`spaktok topics apply`: make a broker's topics what the registry says, and say what it did.

Creates missing topics (partitions, replication, retention, cleanup, min.insync.replicas), sets
differing configs key by key (IncrementalAlterConfigs, so configs we do not own are kept) and adds
partitions to a topic that has fewer. It never removes partitions or changes a replication factor:
those are reported. A call the broker does not support (the dev broker, Tansu 0.6, has no
CreatePartitions; docs/deploy.md "Measured on the dev broker") is reported as such, the rest is
still applied, and nothing crashes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from rich.console import Console
from rich.table import Table

from spaktok.infra.topics_plan import Desired, Observed, TopicChange, desired_topics, plan, retention_words
from spaktok.settings import Settings

UNSUPPORTED = {KafkaError._UNSUPPORTED_FEATURE, KafkaError.UNSUPPORTED_VERSION}
EXIT_OK, EXIT_FAILED, EXIT_UNSUPPORTED = 0, 1, 2


@dataclass(frozen=True)
class Outcome:
    topic: str
    step: str
    error: str | None = None
    unsupported: bool = False


def _error_of(exc: Exception) -> tuple[str, bool, int | None]:
    """The message, whether the broker lacks the call, and the Kafka error code."""
    kafka_error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    if isinstance(kafka_error, KafkaError):
        return kafka_error.str(), kafka_error.code() in UNSUPPORTED, kafka_error.code()
    return str(exc), False, None


def observe(
    admin: AdminClient, names: Iterable[str], timeout: float
) -> tuple[dict[str, Observed], list[str]]:
    """What the broker has of `names`, and warnings (e.g. configs it would not describe)."""
    metadata = admin.list_topics(timeout=timeout).topics
    present = [name for name in names if name in metadata]
    configs, warnings = _describe_configs(admin, present, timeout)
    observed = {}
    for name in present:
        partitions = metadata[name].partitions.values()
        replication = min((len(p.replicas) for p in partitions), default=0)
        observed[name] = Observed(len(partitions), replication, configs.get(name))
    return observed, warnings


def _describe_configs(
    admin: AdminClient, names: list[str], timeout: float
) -> tuple[dict[str, dict[str, str]], list[str]]:
    if not names:
        return {}, []
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    configs: dict[str, dict[str, str]] = {}
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        try:
            entries = future.result()
        except KafkaException as exc:
            message, unsupported, _ = _error_of(exc)
            if unsupported:
                return {}, [f"the broker does not support DescribeConfigs ({message}): configs not compared"]
            raise
        configs[resource.name] = {
            key: entry.value for key, entry in entries.items() if entry.value is not None
        }
    return configs, []


def apply_changes(admin: AdminClient, changes: Iterable[TopicChange], timeout: float) -> list[Outcome]:
    """Create, set configs, add partitions; one outcome per step, failures included, never raised."""
    changes = [change for change in changes if change.has_work]
    outcomes = _create(admin, [c.desired for c in changes if c.create], timeout)
    for change in changes:
        if change.config_changes:
            outcomes.append(_alter(admin, change, timeout))
        if change.grow_to is not None:
            outcomes.append(_grow(admin, change.desired.name, change.grow_to, timeout))
    return outcomes


def _create(admin: AdminClient, wanted: list[Desired], timeout: float) -> list[Outcome]:
    if not wanted:
        return []
    new = [NewTopic(d.name, d.partitions, d.replication, config=d.config) for d in wanted]
    return [
        _settle(name, "create", future.result, timeout, fine=KafkaError.TOPIC_ALREADY_EXISTS)
        for name, future in admin.create_topics(new, request_timeout=timeout).items()
    ]


def _alter(admin: AdminClient, change: TopicChange, timeout: float) -> Outcome:
    entries = [
        ConfigEntry(key, wanted, incremental_operation=AlterConfigOpType.SET)
        for key, (_, wanted) in change.config_changes.items()
    ]
    resource = ConfigResource(ResourceType.TOPIC, change.desired.name, incremental_configs=entries)
    future = admin.incremental_alter_configs([resource], request_timeout=timeout)[resource]
    return _settle(change.desired.name, "set " + ", ".join(change.config_changes), future.result, timeout)


def _grow(admin: AdminClient, name: str, count: int, timeout: float) -> Outcome:
    future = admin.create_partitions([NewPartitions(name, count)], request_timeout=timeout)[name]
    return _settle(name, f"grow partitions to {count}", future.result, timeout)


def _settle(
    topic: str, step: str, result: Callable[..., Any], timeout: float, fine: int | None = None
) -> Outcome:
    try:
        result(timeout)
    except KafkaException as exc:
        message, unsupported, code = _error_of(exc)
        if fine is not None and code == fine:
            return Outcome(topic, step + " (another process created it meanwhile)")
        return Outcome(topic, step, message, unsupported)
    return Outcome(topic, step)


def plan_table(changes: Iterable[TopicChange]) -> Table:
    """The plan as a table: topic, partitions, replication, retention, cleanup, action."""
    table = Table(title="topics", title_justify="left")
    for column in ("topic", "partitions", "replication", "retention", "cleanup", "action"):
        table.add_column(column, overflow="fold")
    for change in changes:
        want, have = change.desired, change.observed
        partitions = str(want.partitions)
        replication = str(want.replication)
        if have is not None and have.partitions != want.partitions:
            partitions = f"{have.partitions} → {want.partitions}"
        if have is not None and have.replication != want.replication:
            replication = f"{have.replication} (wanted {want.replication})"
        if "min.insync.replicas" in want.config:
            replication += f", min ISR {want.config['min.insync.replicas']}"
        style = "green" if change.create else ("yellow" if change.has_work or change.notes else "dim")
        table.add_row(
            want.name,
            partitions,
            replication,
            retention_words(want.config.get("retention.ms")),
            want.config.get("cleanup.policy", ""),
            f"[{style}]{change.action()}[/{style}]",
        )
    return table


def run(
    settings: Settings, *, dry_run: bool, out: Console, grow_partitions: bool = False, timeout: float = 15.0
) -> int:
    """The command: observe, print the plan, apply it unless `dry_run`; returns the exit code: 0 the
    broker matches (or a dry run), 1 a step failed or partition counts still differ from
    SPAKTOK_PARTITIONS (every process assumes it), 2 a step the broker does not support."""
    admin = AdminClient({"bootstrap.servers": settings.broker})
    desired = desired_topics(settings)
    try:
        observed, warnings = observe(admin, [d.name for d in desired], timeout)
    except KafkaException as exc:
        out.print(
            f"[red]cannot read the topics of the broker at {settings.broker}:[/red] {_error_of(exc)[0]}"
        )
        out.print("is SPAKTOK_BROKER right and the broker up?")
        return EXIT_FAILED
    changes = plan(desired, observed, grow_partitions=grow_partitions)
    out.print(plan_table(changes))
    for warning in warnings:
        out.print(f"[yellow]{warning}[/yellow]")
    work = [change for change in changes if change.has_work]
    if dry_run:
        out.print(f"dry run: {len(work)} of {len(changes)} topics would change; nothing was changed.")
        return EXIT_OK
    noted = [change.desired.name for change in changes if change.notes]
    if noted:
        out.print(f"[yellow]left as they are (see the notes):[/yellow] {', '.join(noted)}")
    elif not work:
        out.print(f"nothing to do: the broker's {len(changes)} topics match the registry.")
    code = _report(apply_changes(admin, work, timeout), out) if work else EXIT_OK
    # fewer partitions without --grow-partitions, or more than configured: nothing here changes them
    uneven = [
        c.desired.name
        for c in changes
        if c.observed and c.observed.partitions != c.desired.partitions and c.grow_to is None
    ]
    if uneven:
        out.print(
            f"[red]partition counts differ from SPAKTOK_PARTITIONS={settings.partitions}[/red] on "
            f"{', '.join(uneven)}: the workers' tables assume it; see the notes (docs/deploy.md)."
        )
        return EXIT_FAILED
    return code


def _report(outcomes: list[Outcome], out: Console) -> int:
    for outcome in outcomes:
        if outcome.error is None:
            out.print(f"[green]done[/green] {outcome.topic}: {outcome.step}")
        elif outcome.unsupported:
            out.print(
                f"[yellow]not supported by this broker[/yellow] {outcome.topic}: {outcome.step}: "
                f"{outcome.error}. The topic stays as it is; a broker that supports the call "
                "(Apache Kafka) applies it."
            )
        else:
            out.print(f"[red]failed[/red] {outcome.topic}: {outcome.step}: {outcome.error}")
    if any(o.error is not None and not o.unsupported for o in outcomes):
        return EXIT_FAILED
    return EXIT_UNSUPPORTED if any(o.unsupported for o in outcomes) else EXIT_OK
