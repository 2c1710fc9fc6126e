"""Drift detection, one concern a module (import the names from the module that holds them):

- ``types``: the parameters (``Thresholds``, ``Baseline``), one side's input (``DriftInput``), the result
  (``DriftResult``, ``KindResult``, ``Signal``) and ``KINDS``. Plain data.
- ``stats``: the statistics, pure functions of arrays.
- ``prepare``: one side made ready (``prepare`` -> ``Prepared``): runs the model.
- ``kinds``: data, concept and feature drift and the label-free estimate from two prepared sides. Pure.
- ``summary``: the summary table at the top of the report. Pure.
- ``evidently``: the Evidently Report (text, descriptor and prediction drift; the run's HTML). The only module that
  imports Evidently (about 7 s): imported when a report runs.
- ``detect``: ``detect_drift``, the run: prepare, the kinds, the report.
"""
