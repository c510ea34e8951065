from tests.mocks.webhooks import webhook_receiver  # noqa: F401 - a fixture
