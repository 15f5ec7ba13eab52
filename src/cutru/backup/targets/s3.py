"""A target in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, …) through boto3.

Objects are the keys ``<prefix>config`` and ``<prefix><kind>/<name>``. A save is one
``PutObject`` with ``If-None-Match: *``: the store shows the object whole or not at all and
refuses the request (412) if the key exists, so write-once holds even between two writers.
boto3's own retries are turned off: ``RetryingTarget`` is the one retry policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from cutru.backup.targets.base import Handle, Kind, ObjectInfo, check_range
from cutru.errors import (
    CutruError,
    InputError,
    ObjectExists,
    ObjectNotFound,
    TargetUnavailable,
    TransientTargetError,
)

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_TRANSIENT_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
    "ServiceUnavailable", "ConditionalRequestConflict",  # 409: another conditional write is
})                                                        # in flight; the retry sees who won


class S3Target:
    """Objects in ``bucket`` under ``prefix``, through ``client`` (a boto3 S3 client)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def connect(
        cls,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> S3Target:
        """A target with its own client. Credentials not given come from boto3's usual chain
        (environment, shared files, instance role)."""
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region_name,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )
        return cls(client, bucket, prefix)

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def save(self, handle: Handle, data: bytes) -> None:
        with self._translated(handle, "save"):
            self._client.put_object(
                Bucket=self.bucket, Key=self._key(handle), Body=bytes(data), IfNoneMatch="*"
            )

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        if length == 0 or offset < 0 or (length is not None and length < 0):
            check_range(handle, self.stat(handle).size, offset, length)
            return b""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(handle)}
        if offset or length is not None:
            last = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{last}"
        with self._translated(handle, "load"):
            try:
                response = self._client.get_object(**args)
            except ClientError as exc:
                if not _range_not_satisfiable(exc):
                    raise
                response = None  # 416: fine only for an empty read at the very end
            data: bytes = b"" if response is None else response["Body"].read()
        if response is None:
            check_range(handle, self.stat(handle).size, offset, length)
            return b""
        if length is not None and len(data) != length:  # the store cut the range at the end
            check_range(handle, self.stat(handle).size, offset, length)
            raise TargetUnavailable(f"short read of {handle} in {self.location}")
        return data

    def stat(self, handle: Handle) -> ObjectInfo:
        with self._translated(handle, "stat"):
            response = self._client.head_object(Bucket=self.bucket, Key=self._key(handle))
        return ObjectInfo(handle, int(response["ContentLength"]))

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        if kind is Kind.CONFIG:
            try:
                return iter([self.stat(Handle(Kind.CONFIG))])
            except ObjectNotFound:
                return iter([])
        directory = f"{self.prefix}{kind.value}/"
        found = []
        with self._translated(None, f"list {directory}"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=directory
            )
            for page in pages:
                for item in page.get("Contents", []):
                    handle = _handle_or_none(kind, item["Key"][len(directory):])
                    if handle is not None:
                        found.append(ObjectInfo(handle, int(item["Size"])))
        return iter(sorted(found, key=lambda info: info.handle.name))

    def remove(self, handle: Handle) -> None:
        with self._translated(handle, "remove"):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(handle))

    def close(self) -> None:
        self._client.close()

    def local_file(self, handle: Handle) -> str | None:
        return None

    def _key(self, handle: Handle) -> str:
        return self.prefix + handle.path

    @contextmanager
    def _translated(self, handle: Handle | None, action: str) -> Iterator[None]:
        """The one place where boto3's exceptions become errors of cutru's tree."""
        try:
            yield
        except CutruError:
            raise
        except ClientError as exc:
            raise _from_client_error(exc, handle, f"{action} in {self.location}") from None
        except (BotoConnectionError, HTTPClientError, IncompleteReadError) as exc:
            raise TransientTargetError(f"cannot {action} {self.location}: {exc}") from None
        except BotoCoreError as exc:  # no credentials, bad parameters: not worth retrying
            raise TargetUnavailable(f"cannot {action} {self.location}: {exc}") from None


def _range_not_satisfiable(exc: Any) -> bool:
    error_code = exc.response.get("Error", {}).get("Code")
    return bool(error_code == "InvalidRange" or _status(exc) == 416)


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _from_client_error(exc: Any, handle: Handle | None, what: str) -> CutruError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = _status(exc)
    subject = handle.path if handle else "the bucket"
    if code in _NOT_FOUND and handle is not None:
        return ObjectNotFound(f"{handle} does not exist ({what})", object=handle.path)
    if code == "PreconditionFailed" or status == 412:
        return ObjectExists(f"{subject} already exists ({what})", object=subject)
    message = f"{subject}: {code or status} {error.get('Message', '')} ({what})".strip()
    if code in _TRANSIENT_CODES or status >= 500 or status == 429:
        return TransientTargetError(message, status=status, s3_code=code)
    return TargetUnavailable(message, status=status, s3_code=code)


def _handle_or_none(kind: Kind, name: str) -> Handle | None:
    try:
        return Handle(kind, name)
    except InputError:
        return None  # a key that is not ours (e.g. a deeper path); never read
