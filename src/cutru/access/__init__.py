"""Confidential use: who may read or change what, for which purpose (product pillar 2).

The policy is data (:func:`default_policy`, or :func:`load_policy` for another file) and
:func:`decide` is the one function that applies it. Nothing here touches storage: callers
build the :class:`Principal`, :class:`AccessRequest` and :class:`Resource`, and act on the
:class:`Decision` (see ``docs/access.md``).
"""

from cutru.access.decision import (
    NOT_FOUND,
    REASONS,
    AccessRequest,
    Decision,
    Declaration,
    Grant,
    Resource,
    decide,
)
from cutru.access.policy import (
    ACTIONS,
    PERSONAL_ACTIONS,
    PERSONAL_RESOURCES,
    WRITE_OPERATIONS,
    Jurisdiction,
    Policy,
    Purpose,
    Requirement,
    ResourceKind,
    default_policy,
    load_policy,
)
from cutru.access.principals import (
    COMMUNE_ONLY,
    NO_PERSONAL_DATA,
    Principal,
    PrincipalKind,
    Unit,
    UnitLevel,
)

__all__ = [
    "ACTIONS",
    "COMMUNE_ONLY",
    "NOT_FOUND",
    "NO_PERSONAL_DATA",
    "PERSONAL_ACTIONS",
    "PERSONAL_RESOURCES",
    "REASONS",
    "WRITE_OPERATIONS",
    "AccessRequest",
    "Decision",
    "Declaration",
    "Grant",
    "Jurisdiction",
    "Policy",
    "Principal",
    "PrincipalKind",
    "Purpose",
    "Requirement",
    "Resource",
    "ResourceKind",
    "Unit",
    "UnitLevel",
    "decide",
    "default_policy",
    "load_policy",
]
