"""Layer 1, measurement: build a model, time its passes, write ``samples.csv``, ``run.json``, ``hardware.json``.

Imports no other layer. Modules that touch the model import torch; ``samples`` and ``grid`` do not.
"""
