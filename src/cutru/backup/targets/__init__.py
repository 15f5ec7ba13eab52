"""Where backup objects are stored: a directory, an S3 bucket, or memory (tests).

``S3Target`` is imported from :mod:`cutru.backup.targets.s3`, so that boto3 is loaded only
when it is used.
"""

from cutru.backup.targets.base import Handle, Kind, ObjectInfo, Target
from cutru.backup.targets.local import LocalTarget
from cutru.backup.targets.memory import MemoryTarget
from cutru.backup.targets.retry import RetryingTarget

__all__ = [
    "Handle",
    "Kind",
    "LocalTarget",
    "MemoryTarget",
    "ObjectInfo",
    "RetryingTarget",
    "Target",
]
