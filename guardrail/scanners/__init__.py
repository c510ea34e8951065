"""Scanners: one detector per module, each behind :class:`guardrail.pipeline.protocol.Scanner`."""
