"""What a worker process needs besides the experiment: the storage and its failures, the
PostgreSQL server, storage URLs, helper worker processes, GPU placement, the dashboard's notes and
the process's limits.

The experiment (study.runner, study.confirm, study.objective, study.cli, study.report.read) uses:
- storage: `open_storage`, `close`, `fail_lost_trials`, `requeue`, `out_of_room`;
- retrying: `RetryingStorage`, `StorageBroken`, `StorageLost`, `broken`, `or_broken`, `reason_of`;
- urls: `resolve_url`, `safe_url`, `redact`, `origin`, `STORAGE_ENV`, `REPORTS_DIR`;
- helper: `Helpers`, `HelperFailed`, `forward_to_helpers`, `serve`; gpus: `placed`, `cap_memory`;
- trial_notes: the notes optuna-dashboard shows; limits: `soft_limit`.
Nothing here imports the experiment's modules but `study.records` (the storage format).

Empty on purpose: `study/__init__.py` imports `limits` before numpy, scipy or torch load, so
importing this package must load nothing else.
"""
