"""``twingap data ...``: read real annotated frames; write COCO ground truth and BOP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twingap.cli import app

data_app = typer.Typer(
    help="Read real annotated frames (YCB-Video or BOP layout); write COCO ground truth and BOP.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")

_LAYOUT_HELP = "Input layout: auto (detect), ycbv (NNNN/NNNNNN-meta.mat) or bop (<scene>/scene_gt.json)."
_MODELS_HELP = (
    "Model library whose names label the categories (objects.toml, BOP models/, models_info.json or "
    "a folder of meshes); without it categories are named obj_XXXXXX."
)


def _category_names(models: Path | None) -> dict[int, str] | None:
    """Category id -> name of a model library, or None without one."""
    if models is None:
        return None
    from twingap.assets.asset import ModelLibrary

    return ModelLibrary(models).categories()


@data_app.command("info")
def info(
    root: Annotated[
        Path | None, typer.Argument(help="Dataset folder; default: print the sample data location.")
    ] = None,
    layout: Annotated[str, typer.Option(help=_LAYOUT_HELP)] = "auto",
    models: Annotated[Path | None, typer.Option(help=_MODELS_HELP)] = None,
) -> None:
    """Print the sample data location, or a summary of a dataset folder."""
    if root is None:
        from twingap.assets.asset import default_sample_root

        typer.echo(str(default_sample_root()))
        return
    from collections import Counter

    from twingap.data.coco import category_name
    from twingap.data.loader import detect_layout, load_frames

    found = detect_layout(root) if layout == "auto" else layout
    frames = load_frames(root, layout=found, load_depth=False)  # type: ignore[arg-type]
    counts = Counter(int(i) for f in frames for i in f.obj_ids)
    typer.echo(
        f"{root}: layout {found}, {len(frames)} frames in {len({f.scene_id for f in frames})} scenes, "
        f"{sum(counts.values())} instances of {len(counts)} objects"
    )
    names = _category_names(models)
    for cid, n in sorted(counts.items()):
        typer.echo(f"  {cid:3d} {category_name(cid, names):<24s} {n}")


@data_app.command("convert")
def convert(
    root: Annotated[Path, typer.Argument(help="Input dataset folder.")],
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Output folder (scene folders are written inside).")
    ],
    to: Annotated[str, typer.Option("--to", help="Output format; only 'bop' (scenewise) for now.")] = "bop",
    layout: Annotated[str, typer.Option(help=_LAYOUT_HELP)] = "auto",
    depth_scale: Annotated[
        float,
        typer.Option(
            help="Millimetres per depth unit in the written uint16 PNGs (0.1 keeps YCB-Video depth lossless)."
        ),
    ] = 0.1,
    overwrite: Annotated[bool, typer.Option(help="Replace scene folders that already exist.")] = False,
) -> None:
    """Convert annotated frames to the BOP scenewise layout (millimetres, mask_visib, depth_scale)."""
    from twingap.data.bop import write_bop
    from twingap.data.loader import load_frames
    from twingap.errors import TwingapError

    if to != "bop":
        raise TwingapError(f"unknown output format {to!r} (only 'bop')")
    frames = load_frames(root, layout=layout, load_depth=True)  # type: ignore[arg-type]
    scenes = write_bop(frames, out, depth_scale=depth_scale, overwrite=overwrite, progress=True)
    typer.echo(f"wrote {len(frames)} frames in {len(scenes)} BOP scenes to {out}")


@data_app.command("coco")
def coco(
    root: Annotated[Path, typer.Argument(help="Input dataset folder (YCB-Video or BOP layout).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output COCO ground-truth JSON file.")],
    layout: Annotated[str, typer.Option(help=_LAYOUT_HELP)] = "auto",
    min_visible_px: Annotated[
        int,
        typer.Option(
            help="Instances with fewer visible pixels are marked iscrowd=1/ignore=1 "
            "(neither a miss nor a false positive in COCO evaluation)."
        ),
    ] = 100,
    models: Annotated[Path | None, typer.Option(help=_MODELS_HELP)] = None,
) -> None:
    """Write COCO ground truth: one image per frame, one annotation per instance (visible-mask RLE).

    ``file_name`` is relative to ROOT, so the file can be used as a COCO test set with ``root = ROOT``.
    """
    from twingap.data.coco import frames_to_coco
    from twingap.data.loader import load_frames
    from twingap.io import write_json_atomic

    frames = load_frames(root, layout=layout, load_depth=False)  # type: ignore[arg-type]
    gt = frames_to_coco(
        frames, image_root=root, min_visible_px=min_visible_px, categories=_category_names(models)
    )
    gt["info"]["root"] = Path(root).as_posix()
    write_json_atomic(out, gt, indent=None)
    n_crowd = sum(a["iscrowd"] for a in gt["annotations"])
    typer.echo(
        f"wrote {out}: {len(gt['images'])} images, {len(gt['annotations'])} instances "
        f"({n_crowd} ignored as smaller than {min_visible_px} px)"
    )


@data_app.command("models")
def models_cmd(
    root: Annotated[
        Path,
        typer.Argument(help="Model library: objects.toml folder, BOP models/, models_info.json, or meshes."),
    ],
    to_bop: Annotated[
        Path | None,
        typer.Option(
            "--to-bop", help="Also write the library as a BOP models/ folder (PLY in mm + textures)."
        ),
    ] = None,
) -> None:
    """Load every model of a library and list its id, name, unit, size and texture (checks the library).

    An untextured model is listed with its colour and where that came from (objects.toml's color, the
    material's Kd or baseColorFactor, a PLY's vertex colours, or the default grey).
    """
    from twingap.assets.asset import ModelLibrary

    library = ModelLibrary(root)
    typer.echo(f"{library.root}: {library.kind} library, {len(library.names)} models")
    for cid, name in library.categories().items():
        asset = library.load(name)
        size_cm = (asset.vertices.max(0) - asset.vertices.min(0)) * 100
        if asset.textured:
            tex = "texture " + "x".join(str(v) for v in asset.texture.shape[1::-1])
        else:  # one colour: say which and where it came from (objects.toml, the material, ...)
            rgb = " ".join(str(int(c)) for c in asset.texture.reshape(-1, 3)[0])
            tex = f"no texture, colour {rgb} from {asset.metadata.get('color_source', 'the given colour')}"
        typer.echo(
            f"  {cid:4d} {name:<24s} {library.info[name]['unit']:>2s}  "
            f"{size_cm[0]:.1f} x {size_cm[1]:.1f} x {size_cm[2]:.1f} cm  "
            f"{len(asset.faces)} faces  {tex}"
        )
    if to_bop is not None:
        from twingap.assets.library import write_bop_models

        assets = {cid: library.load(name) for cid, name in library.categories().items()}
        write_bop_models(assets, to_bop)
        typer.echo(f"wrote {len(assets)} models (pose frame, millimetres) to {to_bop}")
