"""The one place where errors become exit codes and messages.

Exit codes (documented in README and ``cutru --help``):

====  ===================================================================
0     success
1     internal error
2     command-line usage error
3     bad input: the message names the field and the rule
4     a Law on Residence rule forbids the operation (rule and article named)
5     not found
6     verification failed: tampering or damage detected
7     conflict with a concurrent change
8     access denied by the policy (the reason code is printed)
9     configuration, keys or database unavailable
====  ===================================================================
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from cutru.errors import AccessDenied, CutruError, InputError, RuleViolation

F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True)

EXIT_CODES = {
    0: "success",
    1: "internal error",
    2: "command-line usage error",
    3: "bad input (field and rule named)",
    4: "rule of the Law on Residence violated (rule and article named)",
    5: "not found",
    6: "verification failed (tampering or damage)",
    7: "conflict with a concurrent change",
    8: "access denied by the policy (reason code printed)",
    9: "configuration, keys or database unavailable",
}


def describe(exc: CutruError) -> str:
    parts = [f"error: {exc.message}"]
    if isinstance(exc, InputError):
        parts.append(f"  field: {exc.field}\n  rule:  {exc.rule}")
    if isinstance(exc, RuleViolation):
        parts.append(f"  rule:    {exc.rule}\n  article: {exc.article}")
    if isinstance(exc, AccessDenied):
        parts.append(f"  reason: {exc.reason}")
    return "\n".join(parts)


@contextmanager
def handled() -> Iterator[None]:
    """Turn a :class:`CutruError` into its message on stderr and its exit code."""
    try:
        yield
    except CutruError as exc:
        err_console.print(describe(exc), markup=False, highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except SQLAlchemyError as exc:
        # what escaped every other mapping: the driver's message, its first line only (the
        # constraint or the reason), with no traceback and no statement (the engine already
        # keeps parameters, residents' data, out of every error: cutru.store.engine)
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        err_console.print(f"error: the database refused the operation: {reason}",
                          markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("interrupted; nothing of the unfinished transaction was written")
        sys.exit(130)
