"""The backup repository: content-addressed, deduplicated, compressed, encrypted, signed.

The format is specified in docs/design.md, "The backup repository"; each module implements
one part of it:

=================  ==========================================================================
``targets``        where objects live: directory, S3, memory; retries of transient errors
``naming``         format/parse pairs for every object name; times
``chunker``        content-defined chunking (FastCDC, gear hash)
``crypto``         sealing (zstd, AES-256-GCM, name as associated data), keyed content ids
``keys``           key objects: the master key wrapped by Argon2id(passphrase) or a key file
``config``         the repository's ``config`` object
``pack``           packs of blobs and their headers
``index``          indexes: blob → pack, offset, length
``lock``           shared and exclusive locks, stale-lock detection
``manifest``       Ed25519-signed manifests
``repository``     :class:`Repository`, which puts them together
``snapshot``       online snapshots of the registry (projection, journal, checkpoints)
``archive``        continuous, hash-linked journal segments; generations
``restore``        a snapshot plus segments into a new database, proven by its digest
``service``        targets by location, repository verification, restore drills
``schedule``       the standing duty inside ``cutru serve``: archiving, snapshots, drills
``retention``      keep-last/hourly/daily/weekly/monthly/yearly
``prune``          forget snapshots and segments; remove unreferenced data, safely
``copy``           snapshots and segments into a second repository
=================  ==========================================================================
"""

from cutru.backup.chunker import Chunker, ChunkerParams
from cutru.backup.keys import Argon2Params, KeyFile, Passphrase, generate_key_file
from cutru.backup.manifest import Ed25519Signer, Manifest, ManifestSigner
from cutru.backup.pack import BlobType
from cutru.backup.repository import Repository

__all__ = [
    "Argon2Params",
    "BlobType",
    "Chunker",
    "ChunkerParams",
    "Ed25519Signer",
    "KeyFile",
    "Manifest",
    "ManifestSigner",
    "Passphrase",
    "Repository",
    "generate_key_file",
]
