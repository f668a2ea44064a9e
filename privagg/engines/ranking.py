"""The keyed hash that ranks a subscriber's partitions for L0 bounding.

A subscriber over the L0 bound keeps the partitions with the lowest ranks:
a uniformly random subset, because the rank is a pseudo-random function of
(subscriber, partition) under a fresh secret drawn for each release. It is
not release noise (which always comes from OpenDP); it only has to make the
kept subset depend on nothing but the subscriber's own partitions.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (a bijection of uint64 with full avalanche)."""
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


_PART_MULTIPLIER = np.uint64(0xD6E8FEB86659FD93)  # odd, so partition -> partition * m is a bijection mod 2^64


def keyed_hash(ids: np.ndarray, parts: np.ndarray, secret: int) -> np.ndarray:
    """Pseudo-random uint64 rank of each (id, partition) pair under a 64-bit secret.

    ``splitmix64(id * golden + partition * m + secret)``. A pair's rank depends
    only on that pair and the secret, never on the rest of the data, which is
    what the sensitivity argument needs: for a fixed secret, adding one
    subscriber leaves every other subscriber's kept partitions unchanged. For
    one subscriber the map from partition to rank is a bijection (``m`` is
    odd and splitmix64 is a bijection), so two partitions of the same
    subscriber never tie.
    """
    k = np.uint64(secret & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        x = ids.astype(np.uint64)
        x *= _GOLDEN
        p = parts.astype(np.uint64)
        p *= _PART_MULTIPLIER
        x += p
        del p
        x += k
        return _mix(x)
