"""guardrail: an OpenAI-compatible proxy that makes LLM output safe and accountable."""

__version__ = "0.1.0"
