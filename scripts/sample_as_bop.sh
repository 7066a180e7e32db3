#!/usr/bin/env bash
# The sample as a user's BOP dataset: frames converted to a BOP split, models written as a BOP models/ folder
# (PLY in mm), the held-out scene also exported to COCO; then a study twinned from the BOP split and tested on
# the held-out scene as BOP and as COCO (the two must give the same AP).
# Usage: scripts/sample_as_bop.sh OUT_DIR [PRESET]   (PRESET defaults to tiny; the closing note used the
# TOML below with preset = "quick", conditions = ["clean", "texture-3"], seeds = [0],
# [scenes] twin_views = 60, composed = 80)
set -euo pipefail
OUT=${1:?usage: scripts/sample_as_bop.sh OUT_DIR [PRESET]}
PRESET=${2:-tiny}
SAMPLE=$(twingap data info)
mkdir -p "$OUT"
twingap data convert "$SAMPLE/ycbv_real_frames" --to bop -o "$OUT/ycbv_bop/test"
twingap data models "$SAMPLE/models" --to-bop "$OUT/ycbv_bop/models"
mkdir -p "$OUT/heldout_only" && cp -r "$OUT/ycbv_bop/test/000002" "$OUT/heldout_only/"
twingap data coco "$OUT/heldout_only" -o "$OUT/heldout_coco.json" --models "$OUT/ycbv_bop/models"
cat > "$OUT/study.toml" <<TOML
preset = "$PRESET"
frames_root = "ycbv_bop/test"
models_root = "ycbv_bop/models"
twin_videos = ["000000", "000001"]
gallery_object = "obj_000005"

[[test_sets]]
name = "bop-twinned"
kind = "twinned"

[[test_sets]]
name = "bop-held-out"
kind = "heldout"
videos = ["000002"]

[[test_sets]]
name = "coco-held-out"
kind = "coco"
root = "heldout_only"
annotations = "heldout_coco.json"
TOML
twingap study --config "$OUT/study.toml" -o "$OUT/run"
