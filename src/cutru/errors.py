"""The one exception tree of cutru.

Every error the product raises on purpose is a :class:`CutruError`. Foreign exceptions
(SQLAlchemy, cryptography, the file system) are translated at the boundary that meets them.
Each class carries its CLI exit code and its HTTP status; exactly one place maps them to a
process exit (``cutru.cli.errors``) and one to an HTTP response (the API's error handler).

::

    CutruError                      exit 1   HTTP 500
    ├── InputError                  exit 3   HTTP 422   bad input: names the field and the rule
    │   ├── IdNumberError                               a personal ID number is malformed
    │   │   ├── IdNumberFormatError                     not 12 digits
    │   │   ├── IdNumberRegionError                     unknown region (province/country) code
    │   │   ├── IdNumberCenturyError                    century/sex digit out of range
    │   │   ├── IdNumberBirthYearMismatch               year digits disagree with birth date
    │   │   └── IdNumberSexMismatch                     sex digit disagrees with the recorded sex
    │   ├── AddressError                                unknown or unmappable administrative unit
    │   └── ImportLineError                             a line of an import file is rejected
    ├── RuleViolation               exit 4   HTTP 409   a Law on Residence rule (rule + article)
    ├── NotFound                    exit 5   HTTP 404
    ├── ConcurrencyConflict         exit 7   HTTP 409   the record changed under the caller
    ├── IntegrityFailure            exit 6   HTTP 500   verification found tampering or damage
    │   ├── JournalChainBroken
    │   ├── CheckpointInvalid
    │   └── ProjectionMismatch
    └── ConfigError                 exit 9   HTTP 500   settings, keys, storage unreachable

Exit code 2 is reserved for command-line usage errors (reported by the CLI framework).
"""

from __future__ import annotations

from typing import Any, ClassVar


class CutruError(Exception):
    """Base class of every error cutru raises on purpose."""

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The one JSON error shape: ``{"error": code, "message": ..., **details}``."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        body.update({k: v for k, v in self.details.items() if v is not None})
        return body


class InputError(CutruError):
    """Bad input. ``field`` names the offending field, ``rule`` the rule it broke."""

    exit_code = 3
    http_status = 422
    code = "invalid_input"

    def __init__(self, message: str, *, field: str, rule: str, **details: Any) -> None:
        super().__init__(message, field=field, rule=rule, **details)
        self.field = field
        self.rule = rule


class IdNumberError(InputError):
    code = "invalid_id_number"


class IdNumberFormatError(IdNumberError):
    pass


class IdNumberRegionError(IdNumberError):
    pass


class IdNumberCenturyError(IdNumberError):
    pass


class IdNumberBirthYearMismatch(IdNumberError):
    pass


class IdNumberSexMismatch(IdNumberError):
    pass


class AddressError(InputError):
    code = "invalid_address"


class ImportLineError(InputError):
    """A rejected line of an import file; ``line`` is 1-based."""

    code = "import_rejected"

    def __init__(self, message: str, *, line: int, field: str, rule: str, **details: Any) -> None:
        super().__init__(f"line {line}: {message}", field=field, rule=rule, line=line, **details)
        self.line = line


class RuleViolation(CutruError):
    """A rule of the Law on Residence (or its decrees) forbids the operation.

    ``rule`` is a stable identifier (``temporary.term_max_2_years``), ``article`` the legal
    basis (``Law 68/2020 Art. 27(3)``).
    """

    exit_code = 4
    http_status = 409
    code = "rule_violation"

    def __init__(self, message: str, *, rule: str, article: str, **details: Any) -> None:
        super().__init__(message, rule=rule, article=article, **details)
        self.rule = rule
        self.article = article


class NotFound(CutruError):
    exit_code = 5
    http_status = 404
    code = "not_found"


class ConcurrencyConflict(CutruError):
    exit_code = 7
    http_status = 409
    code = "conflict"


class IntegrityFailure(CutruError):
    """Verification found the data or its proofs inconsistent."""

    exit_code = 6
    http_status = 500
    code = "integrity_failure"


class JournalChainBroken(IntegrityFailure):
    code = "journal_chain_broken"


class CheckpointInvalid(IntegrityFailure):
    code = "checkpoint_invalid"


class ProjectionMismatch(IntegrityFailure):
    code = "projection_mismatch"


class ConfigError(CutruError):
    exit_code = 9
    http_status = 500
    code = "configuration_error"


def all_error_classes() -> list[type[CutruError]]:
    """Every class of the tree, for tests that check the mappings are complete."""
    out: list[type[CutruError]] = []
    stack: list[type[CutruError]] = [CutruError]
    while stack:
        cls = stack.pop()
        out.append(cls)
        stack.extend(cls.__subclasses__())
    return out
