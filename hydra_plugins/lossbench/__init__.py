"""lossbench's Hydra plugins: the `lossbench` sweeper and the `batched` launcher.

Hydra imports every module under the `hydra_plugins` namespace at start-up, so these modules
import nothing heavy (no torch, no mlflow) until a sweep actually runs.
"""
