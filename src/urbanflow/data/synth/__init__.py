"""Seeded synthetic data: ``urbanflow datasets synth KIND``.

Each kind is one module with a frozen parameters dataclass, a generator and a writer;
:data:`SYNTH_KINDS` maps the kind's name to its writer, so a new kind is one more module and
one more row. Everything written says it is synthetic (:func:`base.synthetic_label`).
"""

from __future__ import annotations

from collections.abc import Callable

from urbanflow.data.synth.base import SynthResult
from urbanflow.data.synth.roads import RoadParameters, write_roads
from urbanflow.data.synth.trips import TripCityParameters, write_trips
from urbanflow.data.synth.wards import WardParameters, write_wards

SYNTH_KINDS: dict[str, Callable[..., SynthResult]] = {
    "trips": write_trips,
    "wards": write_wards,
    "roads": write_roads,
}

__all__ = ["SYNTH_KINDS", "RoadParameters", "SynthResult", "TripCityParameters", "WardParameters"]
