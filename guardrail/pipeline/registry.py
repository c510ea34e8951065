"""The explicit registry of scanner types a policy may name.

Add a scanner by adding one line here: ``"type": "module:Class"``. The class carries
``config_class`` (a pydantic model with ``type: Literal["<type>"]``).
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from guardrail.errors import ConfigError

if TYPE_CHECKING:
    from guardrail.pipeline.protocol import ScannerConfig

SCANNERS: dict[str, str] = {
    "denylist": "guardrail.scanners.denylist:DenylistScanner",
    "pii": "guardrail.scanners.pii:PiiScanner",
    "harm": "guardrail.scanners.harm:HarmScanner",
    "ip": "guardrail.scanners.ip:IPScanner",
}


class UnknownScannerError(ConfigError, KeyError):
    """A policy names a scanner type the registry does not have."""


@cache
def scanner_class(type_name: str) -> Any:
    try:
        path = SCANNERS[type_name]
    except KeyError:
        raise UnknownScannerError(
            f"unknown scanner type {type_name!r}; known: {sorted(SCANNERS)}") from None
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def config_classes() -> list[type[ScannerConfig]]:
    return [scanner_class(t).config_class for t in SCANNERS]


@cache
def scanner_config_union() -> Any:
    classes = tuple(config_classes())
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[classes], Field(discriminator="type")]  # noqa: UP007
