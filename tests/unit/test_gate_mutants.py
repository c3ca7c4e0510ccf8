"""Tests that pin down gate decisions which mutation testing (``make mutants``) showed loose.

Each test names the decision it fixes: a mutant of that line (an operator, a constant, a
dropped argument) must turn one of these red.
"""

from __future__ import annotations

import pytest

from airflow_synth.core.checks import wilson_interval

pytestmark = pytest.mark.unit


def test_wilson_interval_brackets_the_share_and_narrows_with_more_trials() -> None:
    low, high = wilson_interval(0.3, 100)
    assert low == pytest.approx(0.2189, abs=1e-4) and high == pytest.approx(0.3958, abs=1e-4)
    wide = wilson_interval(0.3, 10)
    assert wide[0] < low and wide[1] > high
    assert wilson_interval(0.5, 0) == (0.0, 1.0)
    assert wilson_interval(0.0, 5)[0] == 0.0 and wilson_interval(1.0, 5)[1] == 1.0
