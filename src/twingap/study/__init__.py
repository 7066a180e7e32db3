"""twingap.study: the study end to end (``twingap study``).

* :mod:`~twingap.study.config`: :class:`StudyConfig`, presets ``quick`` / ``paper`` / ``tiny``, TOML.
* :mod:`~twingap.study.runner`: plan jobs (condition x seed), run them resumably, job states.
* :mod:`~twingap.study.executors`: inline, local process pool, Ray.
* :mod:`~twingap.study.stages`: the stage interface; :mod:`~twingap.study.real` (the real stages)
  and :mod:`~twingap.study.fake` (a deterministic stand-in for tests, never results).
* :mod:`~twingap.study.stats`: paired bootstrap differences, seed spread, Kendall tau.
* :mod:`~twingap.study.cost`: artist hours and the ranked fix list.
* :mod:`~twingap.study.report`: ``report.html`` (self-contained), ``report.md``, CSVs, figures.

Example:
    >>> from twingap.study.config import load_study_config
    >>> from twingap.study.runner import run_study
    >>> run_study("runs/demo", load_study_config(None, "quick"))  # doctest: +SKIP
"""
