"""Every torch path of the platform beside the best CPU path: `python -m benchmarks.gpu` (see __main__.py)."""
