"""The suite's own settings are in force (tests/conftest.py)."""

from hypothesis import settings


def test_one_hypothesis_profile_without_deadline_for_every_test():
    assert settings.get_current_profile_name() in ("eventpipe", "thorough")
    assert settings.default.deadline is None
