"""Shared CLI plumbing: settings from the global options, the registry, output helpers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cutru.config import Settings
from cutru.errors import InputError
from cutru.services.registry import Registry

console = Console()


def cli_actor() -> str:
    """Who acts on the command line, for the audit log and incident records."""
    import getpass

    return f"cli:{getpass.getuser()}"


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


@contextmanager
def registry(ctx: typer.Context, *, upgrading: bool = False) -> Iterator[Registry]:
    reg = Registry(settings(ctx), upgrading=upgrading)
    try:
        yield reg
    finally:
        reg.close()


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on stderr; yields ``advance(n)``."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def emit(data: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
    else:
        console.print_json(json.dumps(data, ensure_ascii=False, default=str))


def load_json_arg(text: str | None, path: Path | None, field: str) -> dict[str, Any]:
    """An object given inline (``--data '{...}'``) or as a file (``--data-file f.json``)."""
    raw = path.read_text(encoding="utf-8") if path is not None else text
    if raw is None:
        raise InputError(f"give --{field} or --{field}-file", field=field, rule="required")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InputError(f"{field} is not valid JSON: {exc}", field=field,
                         rule="json.syntax") from None
    if not isinstance(value, dict):
        raise InputError(f"{field} must be a JSON object", field=field, rule="json.object")
    return value
