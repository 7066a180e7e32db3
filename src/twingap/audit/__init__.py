"""twingap.audit: a no-reference audit of a team's own textured meshes, graded on the study's levels.

One module per flaw family (as in :mod:`twingap.artifacts`): :mod:`.mesh_noise` (roughness against a
smoothed copy), :mod:`.holes` (boundary loops; the outer cut apart), :mod:`.texture_blur` (blur and
texel density), :mod:`.baked_light` (albedo explained by normal + occlusion); :mod:`.facts` for the
plain facts. :mod:`.levels` maps scores to levels with thresholds fitted by :mod:`.calibrate` on the
study's own flawed assets; :mod:`.cost` turns levels into AP cost and a fix list from a study run;
:mod:`.report` writes ``audit.json`` and the HTML report.

Usage::

    from twingap.audit import audit_asset

    result = audit_asset(asset)
    result.record["noise"]["level"]
"""

from twingap.audit.core import AuditResult, audit_asset, measure_asset

__all__ = ["AuditResult", "audit_asset", "measure_asset"]
