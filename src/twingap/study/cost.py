"""Cost-benefit: AP recovered per artist hour, and the ranked "fix these first" list.

For a condition ``c`` with AP difference to clean ``delta_c = AP_c - AP_clean`` (negative when the
artifact hurts), fixing the artifact recovers ``-delta_c`` AP points at a cost of ``hours_c``
artist hours, so ``benefit_per_hour = -delta_c / hours_c`` (AP points per hour). The interval of
the benefit is the interval of the difference divided by the (fixed) hours; the study passes the
Holm-adjusted interval, which agrees with the verdict (:func:`twingap.study.stats.holm_levels`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twingap.artifacts.catalogue import load_artist_hours
from twingap.errors import TwingapError

if TYPE_CHECKING:
    from twingap.study.config import StudyConfig


def artist_hours(cfg: StudyConfig) -> dict[str, float]:
    """Hours an artist needs to fix each of the study's conditions.

    Sources, later ones winning: the condition catalogue's defaults
    (:func:`twingap.artifacts.catalogue.load_artist_hours`), the study's ``cost.artist_hours`` TOML file,
    the study's ``cost.hours`` overrides. ``clean`` costs 0 hours.

    Raises:
        TwingapError: If an hour value is missing for a condition, negative or not a number.
    """
    source: Path | None = Path(cfg.cost.artist_hours) if cfg.cost.artist_hours else None
    hours: dict[str, Any] = load_artist_hours()
    if source is not None:
        hours.update(load_artist_hours(source))
    hours.update(cfg.cost.hours)
    hours["clean"] = 0.0
    out: dict[str, float] = {}
    for cond in cfg.conditions:
        h = hours.get(cond)
        if h is None:
            raise TwingapError(f"no artist hours for condition {cond!r}", source)
        if isinstance(h, bool) or not isinstance(h, int | float) or not math.isfinite(h) or h < 0:
            raise TwingapError(f"artist hours for {cond!r} must be a number >= 0, got {h!r}", source)
        out[cond] = float(h)
    return out


@dataclass
class FixItem:
    """One row of the ranked fix list.

    Attributes:
        rank: 1 = fix first.
        condition: Condition name.
        hours: Artist hours to fix it.
        recovered: AP points recovered by fixing (``-delta``; AP x 100).
        recovered_lo: Lower end of the recovered AP's interval (the study's: Holm-adjusted).
        recovered_hi: Upper end.
        per_hour: Recovered AP points per artist hour.
        per_hour_lo: Lower end of the interval of ``per_hour``.
        per_hour_hi: Upper end.
        significant: Whether fixing recovers AP distinguishably from zero (Holm-corrected over
            the conditions, with training noise and, where measurable, scene sampling).
        verdict: ``"fix recovers AP"``, ``"no measurable difference"``, ``"scored above clean"``
            (the artifact did not hurt; the difference is distinguishably above zero) or
            ``"not measured (1 seed)"`` (one training seed: its training noise is unknown).
    """

    rank: int
    condition: str
    hours: float
    recovered: float
    recovered_lo: float
    recovered_hi: float
    per_hour: float
    per_hour_lo: float
    per_hour_hi: float
    significant: bool
    verdict: str = ""


def rank_fixes(deltas: dict[str, tuple[float, float, float, bool]], hours: dict[str, float]) -> list[FixItem]:
    """Rank conditions by AP recovered per artist hour.

    Args:
        deltas: ``{condition: (delta, lo, hi, significant)}``: AP difference to clean in AP points
            (condition minus clean) with its interval (seeds and scenes, Holm-adjusted, see
            :mod:`twingap.study.stats`; NaN bounds with one seed) and whether it is distinguishable
            from zero after the multiple-comparison correction; ``clean`` is ignored.
        hours: Artist hours per condition.

    Returns:
        Items sorted fix-first: significant recoveries by benefit per hour (descending), then the
        rest by benefit per hour. Conditions with 0 hours rank by recovered AP (infinite rate).
    """
    items: list[FixItem] = []
    for cond, (delta, lo, hi, sig) in deltas.items():
        if cond == "clean":
            continue
        h = hours[cond]
        rec, rec_lo, rec_hi = -delta, -hi, -lo
        if h > 0:
            per, per_lo, per_hi = rec / h, rec_lo / h, rec_hi / h
        else:
            per = per_lo = per_hi = math.copysign(math.inf, rec) if rec != 0 else 0.0
        if math.isnan(lo):
            verdict = "not measured (1 seed)"
        elif sig and rec > 0:
            verdict = "fix recovers AP"
        elif sig and rec < 0:
            verdict = "scored above clean"
        else:
            verdict = "no measurable difference"
        items.append(
            FixItem(0, cond, h, rec, rec_lo, rec_hi, per, per_lo, per_hi, bool(sig and rec > 0), verdict)
        )
    items.sort(key=lambda it: (not it.significant, -it.per_hour, -it.recovered, it.condition))
    for i, it in enumerate(items, 1):
        it.rank = i
    return items
