"""Closed vocabularies of the registry (values are stored as their ``value``)."""

from __future__ import annotations

from enum import StrEnum


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


class MaritalStatus(StrEnum):
    SINGLE = "single"
    MARRIED = "married"
    DIVORCED = "divorced"
    WIDOWED = "widowed"


class Relationship(StrEnum):
    """Relationship to the household head (quan hệ với chủ hộ)."""

    HEAD = "head"
    SPOUSE = "spouse"
    CHILD = "child"
    PARENT = "parent"
    SIBLING = "sibling"
    GRANDCHILD = "grandchild"
    GRANDPARENT = "grandparent"
    CHILD_IN_LAW = "child_in_law"
    NIECE_NEPHEW = "niece_nephew"
    OTHER_RELATIVE = "other_relative"
    NON_RELATIVE = "non_relative"


#: Relatives who, living at the same lawful residence, register as one household (domain §3).
CLOSE_RELATIVES = frozenset(
    {
        Relationship.SPOUSE,
        Relationship.CHILD,
        Relationship.PARENT,
        Relationship.SIBLING,
        Relationship.GRANDCHILD,
        Relationship.GRANDPARENT,
    }
)


class ResidenceKind(StrEnum):
    PERMANENT = "permanent"
    TEMPORARY = "temporary"


class AbsenceCategory(StrEnum):
    """Who declares a temporary absence (Law 68/2020 Art. 31(1))."""

    SUPERVISED = "supervised"  # bail, probation, suspended sentence and similar: >= 1 day
    MILITARY_AGE = "military_age"  # of military-service age: >= 3 consecutive months
    OTHER = "other"  # everyone else: >= 12 consecutive months


class PermanentDeregistrationReason(StrEnum):
    """Law 68/2020 Art. 24(1)."""

    DEATH = "death"
    MISSING = "missing"
    SETTLED_ABROAD = "settled_abroad"
    CANCELLATION_DECISION = "cancellation_decision"
    ABSENT_12_MONTHS = "absent_12_months"
    NATIONALITY_LOST = "nationality_lost"
    RENTAL_ENDED = "rental_ended"
    REGISTERED_ELSEWHERE = "registered_elsewhere"
    OTHER = "other"


class TemporaryDeregistrationReason(StrEnum):
    """Law 68/2020 Art. 29(1)."""

    DEATH = "death"
    MISSING = "missing"
    CANCELLATION_DECISION = "cancellation_decision"
    ABSENT_6_MONTHS = "absent_6_months"
    PERMANENT_AT_SAME_ADDRESS = "permanent_at_same_address"
    RENTAL_ENDED = "rental_ended"
    TERM_EXPIRED = "term_expired"
    REGISTERED_ELSEWHERE = "registered_elsewhere"
    OTHER = "other"


class ResidenceBasis(StrEnum):
    """Ground of a permanent registration (Law 68/2020 Art. 20)."""

    OWN_RESIDENCE = "own_residence"  # Art. 20(1)
    RELATIVE = "relative"  # Art. 20(2): consent of head and owner
    RENTED = "rented"  # Art. 20(3): owner's consent + minimum floor area
    CHILD_UNDER_6 = "child_under_6"  # Law 118/2025: with parent/guardian, no consent needed
