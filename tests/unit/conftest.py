"""Unit tests: pure deciders and envelopes, no broker, no database, no network."""

import pytest

# asserts inside the given/when/then helper get pytest's detailed failure messages too
pytest.register_assert_rewrite("gwt")
