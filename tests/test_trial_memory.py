"""A trial worker hands the memory a finished trial freed back to the operating system, so a
reused worker does not grow trial after trial (``nas.trial.release_host_memory``; measured on
whole searches by ``benchmarks/trial_speed.py --search``)."""

from __future__ import annotations

import ctypes.util
import sys
import threading

import psutil
import pytest

from nas.trial import release_host_memory


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
                    reason="malloc_trim is glibc's")
def test_freed_heap_memory_goes_back_to_the_system() -> None:
    """Buffers below glibc's mmap threshold, allocated by another thread (its own heap, as
    PyTorch's worker threads have) and mostly freed, stay resident until trimmed."""
    kept: list[bytearray] = []

    def allocate() -> None:
        buffers = [bytearray(64 * 1024) for _ in range(3000)]  # ~190 MB, touched
        for buffer in buffers:
            buffer[::4096] = b"x" * len(buffer[::4096])
        kept.extend(buffers[::16])  # holes everywhere: no heap top to shrink on its own

    thread = threading.Thread(target=allocate)
    thread.start()
    thread.join()
    held = rss_mb()
    assert release_host_memory() is True
    assert held - rss_mb() > 100, "the freed ~175 MB should leave the process"
    assert len(kept) == 188  # what stays allocated is untouched
    assert all(buffer[0] == ord("x") for buffer in kept)
