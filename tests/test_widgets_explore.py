"""The mapping explorer and the exercise widget (run once svmkit.scenario, svmkit.graphs
and svmkit.exercise are in the kit)."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("svmkit.scenario", reason="svmkit.scenario is not in the kit yet")
pytest.importorskip("svmkit.exercise", reason="svmkit.exercise is not in the kit yet")

from svmkit.widgets import ExerciseWidget, MappingExplorer  # noqa: E402
from svmkit.widgets.exercise import KINDS, make_problem  # noqa: E402


def test_broken_isolation_is_found_and_its_range_walks_in_the_stepper():
    m = MappingExplorer("broken-isolation")
    assert not m.audit.ok and "svmkit-audit" in m.findings._dom_classes
    assert "foreign" in m.findings.value
    owner = next(o for o in m.owner.options if "PASID" in o)
    m.owner.value = owner
    assert "data-highlight='1'" in m.picture.value
    w = m.walk_selected()
    start = m.range.value[2]
    assert w is not None and w.va == start and w.ok
    assert m.stepper.walk is w and m.stepper.message.value == ""


def test_a_vm_shows_its_second_stage_and_cannot_be_walked():
    m = MappingExplorer("nested-vtd")
    m.owner.value = next(o for o in m.owner.options if "PASID" not in o)
    assert m.walk_b.disabled
    assert m.walk_selected() is None and "Choose a GVA range" in m.message.value


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_accepts_its_answer_and_rejects_another(kind):
    for seed in range(1, 6):
        p = make_problem(seed, kind)
        assert p.check(str(p.expected)) is True
        wrong = {"fault": "0x1000"}.get(p.expected, "fault") if "translate" in kind else (
            "1" if "count" in kind else "cc_inv_dsc")
        assert p.check(wrong) is False


def test_same_seed_same_problem_other_seed_other_problem():
    a, b, c = (make_problem(s, "translate: nested walk").question for s in (4, 4, 5))
    assert a == b and a != c


def test_widget_checks_reveals_and_reports_bad_answers():
    x = ExerciseWidget(3, "count the references (nested)")
    n = len(x.problem.walk.refs)
    x.answer.value = str(n)
    assert "Right." in x.verdict.value
    x.answer.value = "many"
    assert "not a whole number" in x.message.value and "Traceback" not in x.message.value
    x.reveal()
    stepper = x.revealed.children[1]
    stepper.step()
    assert re.search(r"data-ref='1' data-highlight='1'", stepper.grid.value)
    x.kind.value = "which invalidation? (VT-d)"
    assert x.problem.walk is None and "pc_inv_dsc" in x.question.value
