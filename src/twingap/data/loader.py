"""One entry point for annotated frames on disk: YCB-Video native or BOP scenewise layout."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from twingap.data.frame import Frame
from twingap.errors import TwingapError

Layout = Literal["auto", "ycbv", "bop"]


def detect_layout(root: str | Path) -> str:
    """Return ``"ycbv"`` or ``"bop"`` for a dataset folder.

    BOP: ``root/<scene>/scene_gt.json`` (or ``root/scene_gt.json`` for a single scene).
    YCB-Video: ``root/NNNN/NNNNNN-meta.mat`` (or ``root/NNNNNN-meta.mat``).

    Raises:
        TwingapError: If the folder is missing or matches neither layout.
    """
    from twingap.data.bop import is_bop_root
    from twingap.data.ycbv import is_ycbv_root

    root = Path(root)
    if not root.is_dir():
        raise TwingapError("data folder not found", root)
    if is_bop_root(root):
        return "bop"
    if is_ycbv_root(root):
        return "ycbv"
    raise TwingapError(
        "not a YCB-Video (NNNN/NNNNNN-meta.mat) or BOP (<scene>/scene_gt.json) dataset folder", root
    )


def load_frames(root: str | Path, layout: Layout = "auto", load_depth: bool = True, **kwargs) -> list[Frame]:
    """Read every annotated frame under ``root``.

    Args:
        root: Dataset folder.
        layout: ``"ycbv"``, ``"bop"`` or ``"auto"`` (detect with :func:`detect_layout`).
        load_depth: Read depth maps (metres, float32).
        **kwargs: Passed to the reader: ``videos``/``frames`` for YCB-Video,
            ``scenes``/``split`` for BOP. ``videos`` also names BOP scene folders (a study's
            ``twin_videos`` work for both layouts).

    Returns:
        Frames sorted by scene then frame (poses object-to-camera, metres, OpenCV camera).

    Raises:
        TwingapError: On a missing folder, an unknown layout, or an invalid frame.
    """
    if layout == "auto":
        layout = detect_layout(root)  # type: ignore[assignment]
    if layout == "ycbv":
        from twingap.data.ycbv import load_ycbv

        return load_ycbv(root, load_depth=load_depth, **kwargs)
    if layout == "bop":
        from twingap.data.bop import load_bop

        if "videos" in kwargs:
            videos = kwargs.pop("videos")
            if "scenes" in kwargs and videos is not None:
                raise TwingapError("give videos or scenes, not both", root)
            kwargs.setdefault("scenes", videos)
        if "frames" in kwargs:
            raise TwingapError("frames= selects YCB-Video frames; a BOP folder is read per scene", root)
        return load_bop(root, load_depth=load_depth, **kwargs)
    raise TwingapError(f"unknown layout {layout!r} (use auto, ycbv or bop)", root)
