"""The comparison report of one sweep, read from MLflow only (no torch, no training code).

    python -m harness.report tracking.experiment=robust_regression      # newest sweep
    python -m harness.report sweep=<sweep id or parent run id> out=reports

Modules, one job each:
    load       MLflow -> the runs table (one row per run) and the sweep's parent and study
    aggregate  groups over seeds: mean, sd, 95% t interval; roles of the varying params
    series     the name of a series (`triplet (hard)`), one function for figures and claims
    claims     the study's claims: the core, stats.py (slopes, degradation, paired differences,
               t intervals) and one module per registered check
    figures    which figures a sweep gets per metric family, and the tables behind them
    plots      drawing: each plot saves its PNG and the CSV it was drawn from
    render     report.md and index.html from one list of blocks
    build      build_report(): the above in order, then attach the folder to the parent run
"""
from harness.report.build import build_report

__all__ = ["build_report"]
