"""Held responses: kept encrypted until a person releases or rejects them.

``models`` (tables), ``crypto`` (the keyring), ``store`` (put, read, decide, expire),
``webhooks`` (signed decision notices, retried, every attempt recorded), ``routes``
(``GET /v1/guardrail/responses/{id}`` for the application that was held).
"""
