"""twingap.evaluate: COCO AP of predictions on real frames, and bootstrap CIs.

* :class:`~twingap.evaluate.coco_map.COCOEvaluator` (reset/process/evaluate; faster-coco-eval backend)
* :class:`~twingap.evaluate.bootstrap.PerImageEval`, :func:`~twingap.evaluate.bootstrap.bootstrap_ci`,
  :func:`~twingap.evaluate.bootstrap.paired_bootstrap_delta`
"""

from twingap.evaluate.bootstrap import PerImageEval, bootstrap_ci, paired_bootstrap_delta
from twingap.evaluate.coco_map import COCOEvaluator, evaluate_coco

__all__ = ["COCOEvaluator", "PerImageEval", "bootstrap_ci", "evaluate_coco", "paired_bootstrap_delta"]
