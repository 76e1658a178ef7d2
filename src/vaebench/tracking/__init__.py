"""MLflow: the store, runs, what each stage logs, the UI's addresses."""
