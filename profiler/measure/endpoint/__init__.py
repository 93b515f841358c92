"""Profiling a served model through its OpenAI-compatible endpoint: the streaming client (``client``) and prompts
of exact token counts (``prompts``). Torch-free."""
