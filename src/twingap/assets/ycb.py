"""The 21 YCB-Video objects: class ids, names, and google_16k -> YCB-Video model frame offsets.

The YCB-Video poses are expressed in the YCB-Video model frame. The google_16k meshes have the
same orientation and differ by a pure translation ``t``: ``p_ycbv = p_g16k + t`` (metres).
The offsets were fitted by translation-only ICP of the YCB-Video point sets to the google_16k
vertices (residuals 0.4-1.4 mm); see ``data/sample/SOURCE.md``.
"""

from __future__ import annotations

import numpy as np

#: YCB-Video class id (1..21) -> object name.
YCBV_NAMES: dict[int, str] = {
    1: "002_master_chef_can",
    2: "003_cracker_box",
    3: "004_sugar_box",
    4: "005_tomato_soup_can",
    5: "006_mustard_bottle",
    6: "007_tuna_fish_can",
    7: "008_pudding_box",
    8: "009_gelatin_box",
    9: "010_potted_meat_can",
    10: "011_banana",
    11: "019_pitcher_base",
    12: "021_bleach_cleanser",
    13: "024_bowl",
    14: "025_mug",
    15: "035_power_drill",
    16: "036_wood_block",
    17: "037_scissors",
    18: "040_large_marker",
    19: "051_large_clamp",
    20: "052_extra_large_clamp",
    21: "061_foam_brick",
}

#: Object name -> YCB-Video class id.
YCBV_IDS: dict[str, int] = {name: idx for idx, name in YCBV_NAMES.items()}

#: google_16k -> YCB-Video model-frame translation in millimetres (x, y, z).
G16K_TO_YCBV_MM: dict[str, tuple[float, float, float]] = {
    "002_master_chef_can": (15.60, 10.24, -73.48),
    "003_cracker_box": (12.33, 12.48, -108.30),
    "004_sugar_box": (8.35, 15.18, -92.44),
    "005_tomato_soup_can": (8.92, -82.43, -59.38),
    "006_mustard_bottle": (14.01, 21.07, -80.64),
    "007_tuna_fish_can": (26.07, 21.98, -17.70),
    "008_pudding_box": (-1.76, -15.33, -22.01),
    "009_gelatin_box": (21.30, 8.83, -18.10),
    "010_potted_meat_can": (30.59, 25.92, -46.52),
    "011_banana": (7.19, -4.93, -16.55),
    "019_pitcher_base": (0.53, -46.35, -143.98),
    "021_bleach_cleanser": (16.66, -9.29, -111.71),
    "024_bowl": (14.97, 42.47, -24.06),
    "025_mug": (17.04, -16.60, -38.53),
    "035_power_drill": (36.97, -31.57, -23.28),
    "036_wood_block": (-25.24, 12.43, -120.16),
    "037_scissors": (-17.03, -7.71, -7.38),
    "040_large_marker": (35.65, 7.37, -9.51),
    "051_large_clamp": (4.22, 10.07, -18.81),
    "052_extra_large_clamp": (19.98, 35.48, -17.93),
    "061_foam_brick": (18.44, -17.23, -16.89),
}


def g16k_offset_m(name: str) -> np.ndarray:
    """Return the (3,) float64 google_16k -> YCB-Video translation of an object, in metres."""
    return np.asarray(G16K_TO_YCBV_MM[name], dtype=np.float64) / 1000.0


def class_name(obj_id: int) -> str:
    """Return the YCB-Video object name of a class id (``"obj_XXXXXX"`` if unknown)."""
    return YCBV_NAMES.get(int(obj_id), f"obj_{int(obj_id):06d}")
