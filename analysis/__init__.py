"""Scaling-law analysis of lmsweep experiments read from MLflow or a CSV (see docs/analysis.md).

Modules: ``load`` (runs and histories from MLflow) and ``table`` (a CSV as the same), ``collapse``
(seeds, lr sweeps), ``lse`` (the one log-space power-law fitter) with ``powerlaw`` and
``chinchilla`` forms, ``budgets``, ``optimum`` and ``isoflop`` (Approach 2), ``bootstrap``,
``significance``, ``plausibility``, ``holdout``, ``curves`` and ``compare`` (equal-budget
comparisons), ``plots``, ``outputs``, ``cli`` and ``commands`` (``python -m analysis``).
"""
