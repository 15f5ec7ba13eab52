"""Fixtures of the backup tests: the three targets, an S3 endpoint over real HTTP, and
repository credentials cheap enough for tests.

The S3 endpoint is moto's server mode (``ThreadedMotoServer``) on 127.0.0.1 at a free port,
started once per session; each test gets a bucket of its own. boto3 talks to it over HTTP
exactly as it talks to any S3-compatible store.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cutru.backup import Argon2Params, ChunkerParams
from cutru.backup.targets import LocalTarget, MemoryTarget, Target
from cutru.backup.targets.s3 import S3Target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def connect_s3(endpoint: str, bucket: str, prefix: str = "") -> S3Target:
    return S3Target.connect(
        bucket,
        prefix,
        endpoint_url=endpoint,
        region_name="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        connect_timeout=2,
        read_timeout=10,
    )


@pytest.fixture
def s3_target(s3_endpoint: str) -> Iterator[S3Target]:
    bucket = f"cutru-test-{secrets.token_hex(6)}"
    target = connect_s3(s3_endpoint, bucket, prefix="repo")
    target._client.create_bucket(Bucket=bucket)
    yield target
    target.close()


TargetFactory = Callable[[], Target]


@pytest.fixture(params=["memory", "local", "s3"])
def make_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TargetFactory]:
    """A factory of targets of one kind that share storage: a second call sees the same
    objects, as a second process (or a reopened repository) would."""
    made: list[Target] = []
    if request.param == "memory":
        shared = MemoryTarget()

        def factory() -> Target:
            return shared

    elif request.param == "local":

        def factory() -> Target:
            return LocalTarget(tmp_path / "repo")

    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = f"cutru-test-{secrets.token_hex(6)}"
        connect_s3(endpoint, bucket)._client.create_bucket(Bucket=bucket)

        def factory() -> Target:
            target = connect_s3(endpoint, bucket, prefix="repo")
            made.append(target)
            return target

    yield factory
    for target in made:
        target.close()


@pytest.fixture
def target(make_target: TargetFactory) -> Target:
    return make_target()


# --- repositories --------------------------------------------------------------------------

#: Argon2id at its minimum cost: the format is the same, only slower guessing is lost.
CHEAP_KDF = Argon2Params(memory_kib=8, iterations=1, lanes=1)
#: Small chunks and packs, so that a few KiB of test data make several of each.
SMALL_CHUNKS = ChunkerParams(min_size=64, avg_size=256, max_size=1024)
SMALL_PACK = 4096
