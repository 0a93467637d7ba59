"""Scaling-law analysis of lmsweep experiments read from MLflow (see docs/analysis.md).

Modules: ``load`` (runs and histories from MLflow), ``collapse`` (seeds, lr sweeps), ``lse``
(the one log-space power-law fitter) with ``powerlaw`` and ``chinchilla`` forms, ``isoflop``
(Approach 2), ``bootstrap``, ``holdout``, ``compare`` (equal-budget comparisons), ``plots``,
``cli`` (``python -m analysis``).
"""
