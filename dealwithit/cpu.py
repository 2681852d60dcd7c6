"""The CPU's feature flags, read from ``/proc/cpuinfo`` without importing TensorFlow.

``model.fastest_precision`` picks bfloat16 by them, and every record and benchmark
stores the ones oneDNN picks its kernels by: one model name ("AMD EPYC") covers CPUs
with and without AVX-512.
"""

from __future__ import annotations

from pathlib import Path

# The CPU features oneDNN picks its kernels by: machines that differ in them give different
# numbers from the same seed and code (RESULTS.md, "Across machines").
KERNEL_FLAGS = frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def kernel_flags() -> list[str]:
    """The sorted ``KERNEL_FLAGS`` this CPU has, as records store them."""
    return sorted(cpu_flags() & KERNEL_FLAGS)
