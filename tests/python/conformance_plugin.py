"""pytest plugin for scripts/conformance: bounds Hypothesis' work in Chroma's
own test suite so a run takes minutes, not hours.

Chroma's conftest loads a Hypothesis profile (PROPERTY_TESTING_PRESET, "fast"
= 50 examples) but many tests pin their own `max_examples` with @settings,
and the stateful tests run 50 steps per example. This plugin, after
collection (so after Chroma's conftest has loaded its profile):

- caps `max_examples` of every @given test at VDB_HYPOTHESIS_MAX_EXAMPLES;
- loads a profile "vdb-conformance" derived from the active one with that
  max_examples and stateful_step_count = VDB_HYPOTHESIS_STEPS, which is what
  the state-machine tests (run_state_machine_as_test builds its settings from
  the default profile at run time) pick up;
- derandomizes (VDB_HYPOTHESIS_DERANDOMIZE=1, default) so a run is repeatable
  and a baseline comparison is not a lottery.

Unset variables leave Chroma's settings alone.
"""

from __future__ import annotations

import os
from typing import List

import hypothesis
import pytest


def _int_env(name: str) -> int | None:
    v = os.environ.get(name, "").strip()
    return int(v) if v else None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: List[pytest.Item]) -> None:
    cap = _int_env("VDB_HYPOTHESIS_MAX_EXAMPLES")
    steps = _int_env("VDB_HYPOTHESIS_STEPS")
    derandomize = os.environ.get("VDB_HYPOTHESIS_DERANDOMIZE", "1") == "1"

    overrides: dict = {}
    if cap is not None:
        overrides["max_examples"] = cap
    if steps is not None:
        overrides["stateful_step_count"] = steps
    if derandomize:
        overrides["derandomize"] = True
        overrides["database"] = None
    if not overrides:
        return

    base = hypothesis.settings.default
    hypothesis.settings.register_profile("vdb-conformance", base, **overrides)
    hypothesis.settings.load_profile("vdb-conformance")

    seen = set()
    for item in items:
        fn = getattr(item, "obj", None)
        s = getattr(fn, "_hypothesis_internal_use_settings", None)
        if fn is None or s is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        kw: dict = {}
        if cap is not None and s.max_examples > cap:
            kw["max_examples"] = cap
        if steps is not None and s.stateful_step_count > steps:
            kw["stateful_step_count"] = steps
        if derandomize:
            kw["derandomize"] = True
            kw["database"] = None
        if kw:
            fn._hypothesis_internal_use_settings = hypothesis.settings(s, **kw)


# ---------------------------------------------------------------- results
# With VDB_CONFORMANCE_RESULTS=FILE, write one line per test at the end of the
# session: "<outcome> <nodeid>", outcome one of passed, failed, skipped,
# xfailed, xpassed, error. A test passes only if setup, call and teardown all
# passed. scripts/conformance derives the passed-list and comparisons from it.

_outcomes: dict = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    nodeid = report.nodeid
    prev = _outcomes.get(nodeid)
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            outcome = "xpassed" if report.passed else "xfailed"
        else:
            outcome = report.outcome  # passed / failed / skipped
        if prev in (None, "passed"):
            _outcomes[nodeid] = outcome
    elif report.failed:
        _outcomes[nodeid] = "error"
    elif report.skipped and prev is None:
        _outcomes[nodeid] = "skipped"
    elif report.when == "setup" and prev is None:
        _outcomes[nodeid] = "passed"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("VDB_CONFORMANCE_RESULTS")
    if not path:
        return
    with open(path, "w") as f:
        for nodeid in sorted(_outcomes):
            f.write(f"{_outcomes[nodeid]} {nodeid}\n")
