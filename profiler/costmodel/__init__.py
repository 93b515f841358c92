"""Layer 2, cost model: fit ``samples.csv`` into cost curves and read and write ``fits/*.json``.

Imports ``profiler.measure`` only where it reads what a run wrote (``samples``); never torch.
"""
