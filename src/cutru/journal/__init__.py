"""The journal: an append-only, hash-chained log of every change to the registry.

This package holds its pure building blocks, which touch no database:

* :mod:`cutru.journal.canonical` — the canonical JSON encoding that entry hashes and
  checkpoint signatures are computed over;
* :mod:`cutru.journal.lthash` — LtHash16, the incremental multiset hash behind each entry's
  state digest;
* :mod:`cutru.journal.signing` — Ed25519 signed checkpoints.

The formats are specified byte for byte in ``docs/design.md``, section "The journal".
"""
