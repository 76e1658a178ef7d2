"""`vaebench tune`: Optuna driving DVC's experiment queue, here or on a Dask cluster, and the
report of an equal tuning budget per architecture (expected best validation score, Dodge et al. 2019)."""
