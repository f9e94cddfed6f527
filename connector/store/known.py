"""The known pairs of a watermark (``Watermark.known``) as one compressed binary value.

A run that wrote 100,000 records keeps 100,000 ``(id, stamp)`` pairs
(connector/sync/window.py). As JSON (``[["12345", "2026-…Z"], …]``, the
form migration 0013 stored) that is about 6 MB to write and parse with every
watermark; here the numeric ids are kept as their differences (sorted, so
mostly small) and the stamps as microseconds above the lowest, both 64-bit
little-endian, compressed with zlib: a few bytes a pair. Other ids
(Salesforce's, at most :data:`connector.sync.window.MAX_OTHER`) stay in the
JSON column ``watermarks.known``.

    b"SK1" | zlib(count: u64 | lowest stamp: i64
                  | id deltas: i64 × count | stamp offsets: i64 × count)
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from itertools import accumulate, pairwise

from connector.state import KnownPairs

_MAGIC = b"SK1"
_HEAD = struct.Struct("<Qq")


def pack(pairs: KnownPairs) -> bytes | None:
    """The numeric pairs of ``pairs`` as bytes (None: there are none)."""
    ids, stamps = pairs.numeric
    if not ids:
        return None
    lowest = min(stamps)
    deltas = array("q", [ids[0]])
    deltas.extend(b - a for a, b in pairwise(ids))
    offsets = array("q", (at - lowest for at in stamps))
    if sys.byteorder == "big":  # pragma: no cover - the store is read on any machine
        deltas.byteswap()
        offsets.byteswap()
    body = _HEAD.pack(len(ids), lowest) + deltas.tobytes() + offsets.tobytes()
    return _MAGIC + zlib.compress(body)


def unpack(blob: bytes | None, other: dict[str, int] | None = None) -> KnownPairs:
    """The pairs :func:`pack` wrote, with ``other`` (non-numeric ids → microseconds)."""
    if not blob:
        return KnownPairs.packed(array("q"), array("q"), other)
    if blob[: len(_MAGIC)] != _MAGIC:
        raise ValueError("watermarks.known_packed: not a known-pairs value")
    body = zlib.decompress(blob[len(_MAGIC) :])
    count, lowest = _HEAD.unpack_from(body)
    size = 8 * count
    deltas, offsets = array("q"), array("q")
    deltas.frombytes(body[_HEAD.size : _HEAD.size + size])
    offsets.frombytes(body[_HEAD.size + size : _HEAD.size + 2 * size])
    if len(offsets) != count:
        raise ValueError("watermarks.known_packed: truncated")
    if sys.byteorder == "big":  # pragma: no cover
        deltas.byteswap()
        offsets.byteswap()
    ids = array("q", accumulate(deltas))
    stamps = array("q", (lowest + at for at in offsets))
    return KnownPairs.packed(ids, stamps, other)
