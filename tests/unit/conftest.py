"""Unit tests: pure deciders and envelopes, no broker, no database, no network."""

import os

import pytest
from hypothesis import HealthCheck, settings

# asserts inside the given/when/then helper get pytest's detailed failure messages too
pytest.register_assert_rewrite("gwt")

# `HYPOTHESIS_PROFILE=soak`: the long run of the property tests (tests that take their example
# count from the profile, e.g. test_money_model.py, run at least this many)
settings.register_profile(
    "soak", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
