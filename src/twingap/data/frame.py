"""The :class:`Frame` record: one annotated real (or synthetic) RGB-D image.

Conventions used throughout twingap:

* Camera frame: OpenCV (x right, y down, z forward), pixel centres at integer coordinates.
* Units: metres everywhere inside twingap; millimetres only at BOP file boundaries.
* Poses: 4x4 homogeneous object-to-camera transforms, ``p_cam = R @ p_obj + t``, with the
  object in the YCB-Video model frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Frame:
    """One annotated image.

    Attributes:
        frame_id: Unique id within its dataset, e.g. ``"0001/000012"`` (video/frame).
        scene_id: The video / BOP scene the frame belongs to, e.g. ``"0001"``.
        rgb_path: Path of the colour image (8-bit RGB, read with PIL).
        K: (3, 3) float64 intrinsics in pixels (OpenCV convention).
        width: Image width in pixels.
        height: Image height in pixels.
        obj_ids: (N,) int64 object ids of the annotated instances (the sample: YCB-Video ids 1..21).
        poses: (N, 4, 4) float64 object-to-camera transforms, metres.
        masks: (N, H, W) bool visible masks, one per instance (may be all False when the
            object is annotated but fully occluded).
        depth: (H, W) float32 depth in metres along the optical axis (0 = invalid), or None.
        cam_pose: (4, 4) float64 camera-to-world transform of the video (camera motion), or
            None when unknown.
        source: Free-form description of where the frame came from (layout, root).
    """

    frame_id: str
    scene_id: str
    rgb_path: Path
    K: np.ndarray
    width: int
    height: int
    obj_ids: np.ndarray
    poses: np.ndarray
    masks: np.ndarray
    depth: np.ndarray | None = None
    cam_pose: np.ndarray | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def num_instances(self) -> int:
        """Number of annotated object instances."""
        return len(self.obj_ids)

    def load_rgb(self) -> np.ndarray:
        """Read the colour image as an (H, W, 3) uint8 RGB array.

        Raises:
            TwingapError: If the file is missing or not a readable image.
        """
        from twingap.data.images import read_rgb

        return read_rgb(self.rgb_path)

    def visible_pixels(self) -> np.ndarray:
        """Return the (N,) int64 visible pixel count of each instance."""
        return self.masks.reshape(len(self.masks), -1).sum(axis=1).astype(np.int64)
