"""Compute roofline: one core's measured int8 MAC/s for a level's GEMM instruction
(the peak probe, src/kernels/x86/peak__*.c) and each layer's share of it.

The floor of a network is its MACs divided by that peak: the time it would take if
every multiply-accumulate ran at the instruction's throughput on one core.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional

from . import _core
from .summary import layer_macs

_PEAK_CACHE: Dict[str, float] = {}


def peak(isa: str, seconds: float = 0.2) -> Optional[tuple]:
    """(probe name, MAC/s of one core) for the instruction `isa`'s GEMMs are built on here,
    measured once per process (best of runs over `seconds`); None where no probe applies
    (scalar, ARM)."""
    probe = _core.peak_of_isa(isa)
    if probe is None:
        return None
    if probe not in _PEAK_CACHE:
        _PEAK_CACHE[probe] = _core.peak_macs_per_second(probe, seconds)
    return probe, _PEAK_CACHE[probe]


def floor_seconds(macs: int, peak_macs_per_second: float, threads: int = 1) -> float:
    """Time of `macs` at the peak on `threads` cores."""
    return macs / (peak_macs_per_second * threads)


class LayerProfile(NamedTuple):
    """One layer of Model.profile: the first three fields are the (name, kernel, seconds)
    the method always returned."""
    name: str
    kernel: str
    seconds: float         # median wall time of the whole batch
    macs: int              # multiply-accumulates of the whole batch
    gmacs: float           # macs / seconds / 1e9
    peak_fraction: Optional[float]  # of the level's peak on the threads used; None without a probe


def layer_profiles(layers, names: List[str], kernels: List[str], seconds: List[float], batch: int,
                   peak_macs: Optional[float], threads: int) -> List[LayerProfile]:
    rows = []
    for layer, name, kernel, s in zip(layers, names, kernels, seconds):
        macs = layer_macs(layer) * batch
        rate = macs / s if s > 0 else 0.0
        fraction = rate / (peak_macs * threads) if peak_macs and macs else None
        rows.append(LayerProfile(name, kernel, s, macs, rate / 1e9, fraction))
    return rows
