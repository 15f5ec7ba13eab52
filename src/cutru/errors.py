"""The one exception tree of cutru.

Every error the product raises on purpose is a :class:`CutruError`. Foreign exceptions
(SQLAlchemy, cryptography, the file system) are translated at the boundary that meets them.
Each class carries its CLI exit code and its HTTP status; exactly one place maps them to a
process exit (``cutru.cli.errors``) and one to an HTTP response (the API's error handler).

::

    CutruError                      exit 1   HTTP 500
    ├── HelperFailed                                    a helper process ended before answering
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
    │   └── ObjectNotFound                              no backup object of that name
    ├── AccessDenied                exit 8   HTTP 403   the access policy refuses (reason code)
    │   ├── NotAuthenticated                 HTTP 401   no valid password, session or API key
    │   └── Throttled                        HTTP 429   an abuse rule throttles the principal
    ├── ConcurrencyConflict         exit 7   HTTP 409   the record changed under the caller
    │   ├── ObjectExists                                backup name taken (write-once)
    │   ├── RepositoryLocked                            a backup lock conflicts
    │   └── RevertConflict                              a revert meets later changes to a row
    ├── IntegrityFailure            exit 6   HTTP 500   verification found tampering or damage
    │   ├── JournalChainBroken
    │   ├── CheckpointInvalid
    │   ├── ProjectionMismatch
    │   ├── RepositoryDamaged                           backup object fails its seal or id
    │   └── ManifestInvalid                             manifest signature fails
    └── ConfigError                 exit 9   HTTP 500   settings, keys, storage unreachable
        ├── DatabaseFormatError                         a database this build cannot keep
        ├── PolicyError                                 the access policy file is invalid (line)
        ├── WrongRepositoryKey                          wrong passphrase or key file
        ├── RepositoryVersionError                      unknown repository format
        └── TargetUnavailable                           backup storage refused or unreachable
            └── TransientTargetError                    ... and worth retrying

Exit code 2 is reserved for command-line usage errors (reported by the CLI framework).
Exit code 8 (access denied) was added with the access layer (``cutru.access``).
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

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt without calling __init__, whose signature differs between subclasses, so
        # that an error crosses to and from a helper process (pickled) as itself
        return _rebuild, (type(self), self.message, self.__dict__)

    def to_dict(self) -> dict[str, Any]:
        """The one JSON error shape: ``{"error": code, "message": ..., **details}``."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        body.update({k: v for k, v in self.details.items() if v is not None})
        return body


def _rebuild(cls: type[CutruError], message: str, state: dict[str, Any]) -> CutruError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


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


class AccessDenied(CutruError):
    """The access policy refuses the request. ``reason`` is the decision's stable reason code
    (``denied.outside_jurisdiction``). A record hidden by a state-secret label is never
    reported this way: the caller raises the same :class:`NotFound` as for an absent record.
    """

    exit_code = 8
    http_status = 403
    code = "access_denied"

    def __init__(self, message: str, *, reason: str, **details: Any) -> None:
        super().__init__(message, reason=reason, **details)
        self.reason = reason


class NotAuthenticated(AccessDenied):
    """No valid identity: wrong password, locked account, unknown or expired token or key."""

    http_status = 401
    code = "not_authenticated"


class Throttled(AccessDenied):
    """The principal crossed an abuse rule (rate or breadth of reading) and is throttled."""

    http_status = 429
    code = "throttled"


class ConcurrencyConflict(CutruError):
    exit_code = 7
    http_status = 409
    code = "conflict"


class RevertConflict(ConcurrencyConflict):
    """A revert would undo a row that a later, kept change also changed: each such conflict
    must be resolved explicitly (``conflicts`` lists them)."""

    code = "revert_conflict"


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


class DatabaseFormatError(ConfigError):
    """The database holds data in a format this build cannot verify or continue (a journal
    whose state digests are of an older digest format)."""

    code = "database_unsupported_format"


# --- the backup repository (cutru.backup) ----------------------------------------------


class ObjectNotFound(NotFound):
    """A backup target holds no object of that kind and name."""

    code = "backup_object_not_found"


class ObjectExists(ConcurrencyConflict):
    """A backup object of that name exists; objects are written once, never replaced."""

    code = "backup_object_exists"


class RepositoryLocked(ConcurrencyConflict):
    """Another process holds a lock on the backup repository that conflicts with ours."""

    code = "backup_repository_locked"


class RepositoryDamaged(IntegrityFailure):
    """A backup object fails authentication, its content id or its format: it was damaged or
    altered. Its data is never returned."""

    code = "backup_repository_damaged"


class ManifestInvalid(IntegrityFailure):
    """A backup manifest is not signed by a known key, or its signature does not verify."""

    code = "backup_manifest_invalid"


class WrongRepositoryKey(ConfigError):
    """No key object of the repository opens with the passphrase or key file given."""

    code = "backup_wrong_key"


class RepositoryVersionError(ConfigError):
    """The repository (or one of its objects) has a format version this build cannot read."""

    code = "backup_unsupported_version"


class TargetUnavailable(ConfigError):
    """Backup storage refused the request or could not be reached."""

    code = "backup_target_unavailable"


class TransientTargetError(TargetUnavailable):
    """A backup storage failure that may succeed if tried again (timeout, 5xx, throttling)."""

    code = "backup_target_transient"


class PolicyError(ConfigError):
    """The access policy file is invalid; ``line`` (1-based) is where the problem is."""

    code = "invalid_policy"

    def __init__(self, message: str, *, line: int, source: str, **details: Any) -> None:
        super().__init__(f"{source}, line {line}: {message}", line=line, source=source,
                         **details)
        self.line = line
        self.source = source
        self.problem = message


def all_error_classes() -> list[type[CutruError]]:
    """Every class of the tree, for tests that check the mappings are complete."""
    out: list[type[CutruError]] = []
    stack: list[type[CutruError]] = [CutruError]
    while stack:
        cls = stack.pop()
        out.append(cls)
        stack.extend(cls.__subclasses__())
    return out
