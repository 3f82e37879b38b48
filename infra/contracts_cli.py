"""`spaktok contracts …`: write and check the published event contracts (docs/events.md).

A sub-app of the CLI so that cli.py only mounts it; the work is in `events.contracts`,
`events.compat` and `infra.asyncapi`, imported when a command runs (they load every model: half a
second that no other CLI command should pay).
"""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True, help="Event contracts: JSON Schemas and the AsyncAPI document.")
console = Console()


@app.command()
def generate(
    force: bool = typer.Option(
        False, help="Write even when the change is incompatible (never for a release)."
    ),
) -> None:
    """Regenerate schemas/events/*.json and schemas/asyncapi.json from the models."""
    from spaktok.events import compat, contracts
    from spaktok.infra import asyncapi

    problems = compat.check(contracts.committed(), contracts.generate())
    if problems and not force:
        for problem in problems:
            console.print(f"[red]incompatible:[/red] {problem}")
        console.print(
            "Nothing written: raise the event's schema_version and register an upcaster (docs/events.md)."
        )
        raise typer.Exit(1)
    changed = contracts.write()
    if asyncapi.write():
        changed.append(str(asyncapi.DOCUMENT_FILE.relative_to(contracts.ROOT)))
    console.print(f"{len(changed)} file(s) changed" + (": " + ", ".join(changed) if changed else ""))


@app.command()
def check() -> None:
    """Fail when the committed contracts differ from the models or a change is incompatible."""
    from spaktok.events import compat, contracts
    from spaktok.infra import asyncapi

    stale = contracts.stale() + (["asyncapi.json"] if asyncapi.is_stale() else [])
    problems = compat.check(contracts.committed(), contracts.generate())
    problems += [f"{name}: out of date (run `spaktok contracts generate`)" for name in stale]
    for problem in problems:
        console.print(f"[red]✗[/red] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print("contracts up to date and compatible")
