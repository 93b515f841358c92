"""Layer 3, language-based algorithms: the LLM-call interface, the paper's exercises, their
pricing and break-even, and their real execution (``execution``, ``validate``: these two import torch).

Imports ``profiler.costmodel`` and, for real execution, ``profiler.measure``.
"""
