"""Fixtures: a module-scoped development PKI and a guardrail app with a fake image upstream."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from guardrail.labelling.pki import PkiPaths, init_dev_pki
from tests.labelling.fakes import FakeImageUpstream

CLIENT_KEY = "sk-labelling-test"

POLICY = """
name: default
scanners: []
labelling:
  notice:
    position: append
  images:
    thumbnail: "off"
"""


@dataclass
class LabApp:
    app: Any
    upstream: FakeImageUpstream
    pki: PkiPaths
    upstream_pki: PkiPaths

    @property
    def state(self) -> Any:
        return self.app.state.guardrail

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://proxy.test",
            headers={"Authorization": f"Bearer {CLIENT_KEY}"})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return init_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def upstream_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    """A second, unrelated CA: stands in for the upstream provider's own signer."""
    return init_dev_pki(tmp_path_factory.mktemp("upstream-pki"))


def presigner(p: PkiPaths) -> Any:
    from guardrail.labelling.c2pa_images import ImageSigner
    from guardrail.labelling.config import ImageSigningConfig
    from guardrail.labelling.signer import SignerSource

    signer = ImageSigner(SignerSource("es256", p.chain.read_bytes(), key_pem=p.key.read_bytes()))

    def presign(data: bytes) -> bytes:
        return signer.sign(data, ImageSigningConfig(), model="upstream-native",
                           policy_name="upstream", policy_version="0", request_id="up").data

    return presign


def build_app(tmp: Path, pki: PkiPaths, upstream_pki: PkiPaths, policy: str = POLICY) -> LabApp:
    from guardrail.app import create_app
    from guardrail.labelling.service import setup_labelling
    from guardrail.labelling.settings import C2paSettings
    from guardrail.settings import Settings

    (tmp / "policies").mkdir()
    (tmp / "policies" / "default.yaml").write_text(textwrap.dedent(policy), encoding="utf-8")
    fake = FakeImageUpstream(presign=presigner(upstream_pki))
    settings = Settings(database_url=f"sqlite:///{tmp}/g.db", policy_dir=tmp / "policies",
                        upstream_url="http://upstream.test/v1", upstream_api_key="sk-up",
                        api_keys=[CLIENT_KEY], image_fetch_hosts=["images.upstream.test"])
    app = create_app(settings, transport=httpx.MockTransport(fake.handler))
    paths = set(app.openapi()["paths"])
    assert {"/v1/images/generations", "/v1/images/edits", "/v1/guardrail/verify"} <= paths
    setup_labelling(app.state.guardrail, C2paSettings(
        cert=pki.chain, key=pki.key, trust_anchors=pki.ca, dev_pki=False))
    return LabApp(app, fake, pki, upstream_pki)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, pki: PkiPaths,
        upstream_pki: PkiPaths) -> Iterator[LabApp]:
    la = build_app(tmp_path_factory.mktemp("app"), pki, upstream_pki)
    yield la
    la.state.store.engine.dispose()
