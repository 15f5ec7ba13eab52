"""The operator's pages: what the standing backup duty has done (last snapshot, archiving lag,
last verified restorable point, restore drills) and the repository's snapshots. No personal
data anywhere: names, positions, digests, sizes and times only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from cutru.web.core import Member
from cutru.web.errors import WebRoute

router = APIRouter(route_class=WebRoute, include_in_schema=False)

BACKUP = "backup_verify"


@router.get("/ops")
def status(v: Member) -> Response:
    schedule = v.web.backup
    report = schedule.report() if schedule is not None else None
    found: dict[str, Any] = v.guard.backup_status(v.me, v.purpose(BACKUP), report)
    return v.page("ops/status.html", status=found, configured=schedule is not None)


@router.get("/ops/snapshots")
def snapshots(v: Member) -> Response:
    why = v.purpose(BACKUP)
    opener = v.guard.backup_repository or (v.web.backup.open_repository
                                           if v.web.backup is not None else None)
    if opener is None:
        v.guard.backup_status(v.me, why, None)  # decided and audited like any other view
        return v.page("ops/snapshots.html", listing=None)
    listing = v.guard.backup_snapshots(v.me, why, opener)
    return v.page("ops/snapshots.html", listing=listing)
