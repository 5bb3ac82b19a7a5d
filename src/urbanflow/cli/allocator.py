"""How a `urbanflow` process asks the C allocator to hand freed memory back.

glibc serves blocks below its mmap threshold from heaps that rarely shrink, and raises that
threshold (up to 32 MiB) each time a large block is freed. A network's batches allocate and
free tensors of 4 to 32 MiB thousands of times, so the heaps fill with freed holes: at 1,000
sensors `urbanflow train` peaked at 1.34 GiB with glibc's default and at 0.95 GiB with a fixed
4 MiB threshold (benchmarks/scale.py, issue 11's bound is 1.1 GB there). Blocks of 4 MiB and
more are then mapped for each allocation and unmapped when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes unless ``MALLOC_MMAP_THRESHOLD_`` is
    set; False (nothing done) on another C library or platform."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): leave the allocator alone
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
