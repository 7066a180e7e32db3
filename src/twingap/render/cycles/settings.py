"""The quality settings of a Cycles render: one frozen dataclass, validated once.

:class:`CyclesSettings` is what the renderer, :func:`~twingap.render.cycles.render_batch`, the
worker process (which receives it as a dict) and the study's ``[render] options`` check all use.
Importing this module needs neither ``bpy`` nor Blender.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from twingap.errors import TwingapError

DEVICES = ("auto", "cpu", "gpu")
DENOISE_QUALITIES = ("HIGH", "BALANCED", "FAST")


@dataclass(frozen=True)
class CyclesSettings:
    """Quality settings of a Cycles render (validated and normalised on construction).

    Attributes:
        samples: Path-tracing samples per pixel (fixed; adaptive sampling is off), >= 1.
        denoise: Run OpenImageDenoise (albedo + normal guided) on the colour pass (when the
            Blender build has it).
        denoise_quality: OIDN quality, ``"HIGH"``, ``"BALANCED"`` or ``"FAST"`` (any case; at
            640x480 on 2 busy cores: about 5, 2.5 and 1 s on top of the path tracing).
        device: ``"auto"`` (a GPU when Cycles finds one, else CPU), ``"cpu"`` or ``"gpu"`` (any
            case).
        max_bounces: Total light bounces (diffuse bounces are capped at 3, glossy at 2).
        threads: CPU threads (0 = all usable cores).
        filter_width: Pixel filter (Blackman-Harris) width, pixels.
        sun_angle: Angular diameter of sun lights, radians (soft shadows).
        point_radius: Radius of point lights, metres (soft shadows).

    Raises:
        TwingapError: On an unknown device or denoise quality, ``samples < 1``, or a value that
            is not a number where one is expected.
    """

    samples: int = 8
    denoise: bool = True
    denoise_quality: str = "BALANCED"
    device: str = "auto"
    max_bounces: int = 4
    threads: int = 0
    filter_width: float = 1.5
    sun_angle: float = 0.05
    point_radius: float = 0.02

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            kind = {"int": int, "bool": bool, "float": float, "str": str}[f.type]
            try:
                value = kind(value)
            except (TypeError, ValueError):
                raise TwingapError(f"Cycles option {f.name}={value!r}: expected {f.type}") from None
            object.__setattr__(self, f.name, value)
        object.__setattr__(self, "device", self.device.lower())
        object.__setattr__(self, "denoise_quality", self.denoise_quality.upper())
        if self.device not in DEVICES:
            raise TwingapError(f"unknown Cycles device {self.device!r} (have: {', '.join(DEVICES)})")
        if self.samples < 1:
            raise TwingapError("Cycles samples must be >= 1")
        if self.denoise_quality not in DENOISE_QUALITIES:
            raise TwingapError(
                f"unknown denoise quality {self.denoise_quality!r} (have: {', '.join(DENOISE_QUALITIES)})"
            )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> CyclesSettings:
        """Settings from backend options (a study's ``[render] options``, renderer keywords).

        Raises:
            TwingapError: On an option that is not a field (one line listing the known ones), or
                an invalid value.
        """
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise TwingapError(f"unknown Cycles option(s) {unknown} (have: {', '.join(cls.names())})")
        return cls(**options)
