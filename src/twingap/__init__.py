"""twingap: measure the sim-to-real gap of digital-twin synthetic data.

The package is organised as a one-directional flow of plain functions over plain data:
real frames -> twin scenes -> (asset artifacts) -> rendered synthetic datasets -> trained
detectors -> COCO mAP on real frames -> cost-benefit report. See ``DESIGN.md``.
"""

__version__ = "0.1.0"
