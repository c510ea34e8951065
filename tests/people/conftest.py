from tests.people.helpers import held  # noqa: F401
