"""twingap.evaluate: COCO AP of predictions on real frames, re-accumulable on image subsets.

* :class:`~twingap.evaluate.coco_map.COCOEvaluator` (reset/process/evaluate; faster-coco-eval backend)
* :class:`~twingap.evaluate.bootstrap.PerImageEval`: per-image matching once, AP on any weighting
  of the images (the study's leave-one-scene-out intervals use it; see :mod:`twingap.study.stats`)
"""

from twingap.evaluate.bootstrap import PerImageEval
from twingap.evaluate.coco_map import COCOEvaluator, evaluate_coco

__all__ = ["COCOEvaluator", "PerImageEval", "evaluate_coco"]
