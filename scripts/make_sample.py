"""Build ``data/sample/`` from ``../shared/data`` (run once by the maintainers; documented in SOURCE.md).

Real frames are copied byte for byte. Each google_16k mesh is re-saved as a binary glTF (GLB)
with its texture downscaled to 1024 px (Lanczos) and embedded; the geometry is unchanged
(google_16k model frame, metres). ``models/models_info.json`` records per model the
google_16k -> YCB-Video translation and, for the six models without a texture, the uniform
fallback colour used instead.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import trimesh
from PIL import Image

SRC = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
DST = Path(sys.argv[2] if len(sys.argv) > 2 else "data/sample")
TEX = 1024

# Approximate albedo of the six objects whose texture is not in the sample (sRGB, 0-255),
# chosen from the objects' product colours; documented in SOURCE.md.
FALLBACK = {
    "019_pitcher_base": (40, 90, 170),
    "021_bleach_cleanser": (225, 225, 230),
    "024_bowl": (190, 40, 35),
    "025_mug": (190, 40, 35),
    "036_wood_block": (200, 160, 110),
    "052_extra_large_clamp": (60, 60, 60),
}

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from twingap.assets.ycb import G16K_TO_YCBV_MM, YCBV_IDS  # noqa: E402


def main() -> None:
    frames_dst = DST / "ycbv_real_frames"
    if frames_dst.exists():
        shutil.rmtree(frames_dst)
    shutil.copytree(SRC / "ycbv_real_frames", frames_dst)
    models_dst = DST / "models"
    models_dst.mkdir(parents=True, exist_ok=True)
    info = {}
    for name in sorted(G16K_TO_YCBV_MM):
        src = SRC / "ycb_models" / "google_16k" / name
        # maintain_order must stay off: it would keep one UV per position and smear the seams.
        mesh = trimesh.load(src / "textured.obj", process=False)
        textured = (src / "texture_map.png").is_file()
        if textured:
            img = Image.open(src / "texture_map.png").convert("RGB")
            mesh.visual.material.image = img.resize((TEX, TEX), Image.LANCZOS)
        else:
            mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
        mesh.export(models_dst / f"{name}.glb")
        info[name] = {
            "obj_id": YCBV_IDS[name],
            "file": f"{name}.glb",
            "g16k_to_ycbv_mm": list(G16K_TO_YCBV_MM[name]),
            "textured": textured,
            "texture_px": TEX if textured else None,
            "fallback_rgb": None if textured else list(FALLBACK[name]),
            "num_vertices": len(mesh.vertices),
            "num_faces": len(mesh.faces),
        }
        print(name, len(mesh.vertices), len(mesh.faces), textured)
    (models_dst / "models_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
