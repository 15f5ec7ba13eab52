"""The backup errors belong to the one tree, are drawn in its docstring, and carry the exit
codes an operator's script can act on."""

from __future__ import annotations

import pytest

from cutru import errors
from cutru.errors import (
    CutruError,
    ManifestInvalid,
    ObjectExists,
    ObjectNotFound,
    RepositoryDamaged,
    RepositoryLocked,
    RepositoryVersionError,
    TargetUnavailable,
    TransientTargetError,
    WrongRepositoryKey,
)

EXPECTED = {
    ObjectNotFound: 5,
    ObjectExists: 7,
    RepositoryLocked: 7,  # try again later
    RepositoryDamaged: 6,  # damage or tampering
    ManifestInvalid: 6,
    WrongRepositoryKey: 9,
    RepositoryVersionError: 9,
    TargetUnavailable: 9,
    TransientTargetError: 9,
}


@pytest.mark.parametrize(("cls", "exit_code"), EXPECTED.items())
def test_backup_errors_are_in_the_tree(cls: type[CutruError], exit_code: int) -> None:
    assert cls in errors.all_error_classes()
    assert f"── {cls.__name__} " in (errors.__doc__ or "")
    assert cls.exit_code == exit_code
    assert cls.code.startswith("backup_")
