"""Exercises: deterministic per seed, answers agree with an independent walk."""

import pytest

import svmkit
from svmkit.exercise import KINDS, make


def lines_ok(s):
    return all(len(l) <= 72 and l.isascii() for l in s.splitlines())


@pytest.mark.parametrize("kind", KINDS)
def test_seeds_are_stable_distinct_and_checkable(kind):
    seen = set()
    outcomes = set()
    for seed in range(12):
        a, b = make(seed, kind), make(seed, kind)
        assert a.question == b.question and a.answer == b.answer
        seen.add(a.question)
        assert lines_ok(a.question) and lines_ok(a.answer)
        # The stored walk is what the core walker says for the printed problem.
        kw = dict(root=a.root, access=a.access, phys_bits=39, engine="reference")
        if kind == "first":
            kw.update(fmt="x86_64", levels=4, user=True)
        elif kind == "second":
            kw.update(fmt="vtd_sl", levels=3)
        else:
            kw.update(fmt="x86_64", levels=4, user=True, second_root=a.second_root,
                      second_levels=3)
        w = svmkit.walk(a.mem, a.address, **kw)
        assert (w.ok, w.pa) == (a.walk.ok, a.walk.pa)
        if w.ok:
            outcomes.add("ok")
            assert a.check(w.pa) and a.check(hex(w.pa)) and not a.check(w.pa + 4096)
            assert not a.check("fault")
            assert f"{w.pa:#x}" in a.answer
        else:
            outcomes.add(w.fault.reason)
            assert a.check("fault") and a.check(w.fault.reason) and not a.check(0)
        # Every table entry the walk read is printed in the question.
        for r in a.walk.refs:
            if r.value:
                assert f"{r.value:#018x}" in a.question
    assert len(seen) == 12
    assert "ok" in outcomes and len(outcomes) >= 2, outcomes


def test_nested_is_two_dimensional():
    ex = next(make(s) for s in range(50) if make(s).walk.ok)
    assert len(ex.walk.refs) == 19 and ex.walk.gpa is not None
    assert "19 page-table refs" in ex.answer


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        make(1, "sideways")
    with pytest.raises(ValueError, match="seed"):
        make("1")
    with pytest.raises(ValueError, match="answer"):
        make(1).check(1.5)
