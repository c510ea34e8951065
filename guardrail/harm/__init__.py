"""Harm classification internals: taxonomy, backends, micro-batching, chunking.

The scanner lives in :mod:`guardrail.scanners.harm`; the taxonomy and each backend's label
mapping are documented in :mod:`guardrail.harm.taxonomy`.
"""
