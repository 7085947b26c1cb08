"""LLM orchestration kernels: providers, routing, consensus, caching, usage, record/replay.

Network I/O stays at the edge (``providers``, ``router``); scoring (embeddings, consensus,
cache lookups) is array math. Modules:

- ``config``: :class:`~prism_kernels.llm.config.LlmConfig` from the environment
  (``OPENAI_API_KEY``/``OPENAI_BASE_URL``, ``ANTHROPIC_API_KEY``/``ANTHROPIC_BASE_URL``,
  ``GEMINI_API_KEY``, ``PRISM_LLM_CONFIG`` YAML, ``PRISM_LLM_REPLAY``); keys held as
  :class:`~prism_kernels.llm.config.Secret` so they never print.
- ``providers``: OpenAI-compatible, Anthropic and Gemini clients (async complete and stream
  with usage, model discovery).
- ``router``: :class:`~prism_kernels.llm.router.LlmRouter`: retries with backoff and jitter,
  cooldown of failing endpoints, fallbacks (also mid-stream), sync wrappers, bounded batches.
- ``replay``: replay recorded responses from JSONL, and record them from real calls.
- ``embeddings``, ``consensus``, ``cache``, ``usage``: answers scored by meaning, caching,
  token and cost accounting.
"""
