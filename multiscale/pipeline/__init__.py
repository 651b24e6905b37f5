"""The study pipeline: study file, per-subject task graphs on dask, results and report."""
