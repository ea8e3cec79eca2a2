"""Adaptive search beyond grids: batched ask-and-tell with Optuna (>= 4).

    python -m harness -m loss=mse,mae,huber dataset=diabetes 'optimizer.lr=tag(log,interval(1e-4,1))' \\
        hydra.sweeper.search=optuna hydra.sweeper.trials=32 hydra.sweeper.round=8 [hydra.sweeper.sampler=random]

The command line is read as a search space (space.py): ranges are searched, everything else is
the grid, whose values make groups (one Optuna study each: one per loss here), and whose seeds
every trial trains. Each round asks every study for `round` trials and trains them at once as
stacks (runs that share a stack key train as one batched program; a loss's trials differ only in
numbers), then tells each trial the mean validation score of its runs (study.py). The test split
is never the objective. Trials are MLflow children of the sweep's parent run, tagged with their
trial number and study (lossbench.trial, lossbench.search), and the studies live in an Optuna
storage beside the MLflow store: rerunning the command resumes the sweep and its studies, with
no trial trained twice. progress.py turns a runs table into the best score so far against the
run-steps spent (the report's search-progress figure; bench.py compares grid, random and TPE).
The sweeper's side is hydra_plugins/lossbench/search.py.
"""
