"""The walk stepper in the kernel (no browser): stepping, pictures, decoding, messages."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import svmkit
from svmkit.widgets import WalkStepper, catalogue
from svmkit.widgets._common import parse_address
from svmkit.widgets import setups as S

LIT = re.compile(r"data-ref='(\d+)' data-highlight='1'")


def lit(html):
    found = LIT.findall(html)
    assert len(found) <= 1, found
    return int(found[0]) if found else None


def count(stepper):
    return int(re.search(r"data-count='(\d+)'", stepper.counter.value).group(1))


@pytest.mark.parametrize("key", list(S.PLAIN))
def test_step_back_reset_follow_the_refs(key):
    s = WalkStepper(key)
    n = len(s.walk.refs)
    assert n > 0 and count(s) == 0 and lit(s.grid.value) is None
    for k in range(1, n + 1):
        s.step()
        assert count(s) == k
        assert lit(s.grid.value) == k
        ref = s.walk.refs[k - 1]
        assert f"{ref.address:#x}" in s.entry.value
    s.step()                          # past the end: stays
    assert count(s) == n
    assert "references" in s.result.value
    s.back()
    assert count(s) == n - 1 and lit(s.grid.value) == n - 1
    s.reset()
    assert count(s) == 0 and lit(s.grid.value) is None
    assert s.message.value == ""


@pytest.mark.parametrize("key,expected", [("first4", 4), ("first5", 5), ("second4", 4),
                                          ("nested44", 24), ("nested55", 35)])
def test_full_walk_reference_counts(key, expected):
    # n(m+1)+m for nested n+m (Bhargava et al. 2008); one per level otherwise.
    s = WalkStepper(key)
    assert s.walk.ok and len(s.walk.refs) == expected
    assert f"of {expected} references" in s.counter.value


def test_reserved_bit_is_flagged_in_the_decoded_entry():
    s = WalkStepper("first4")
    bad = dict(S.get("first4").addresses)["reserved bit set (fault)"]
    w = s.load(bad)
    assert w.fault.reason == "reserved-bit"
    s.step()
    assert "svmkit-reserved" in s.entry.value and "bit(s) 7" in s.entry.value
    good = s.load(dict(S.get("first4").addresses)["4 KiB page"])
    for _ in good.refs:
        s.step()
        assert "svmkit-reserved" not in s.entry.value


def test_fault_outcome_is_stated_at_the_end():
    s = WalkStepper("nested44")
    w = s.load(dict(S.get("nested44").addresses)["GPA not backed (second-level fault)"])
    assert w.fault.stage == "second"
    for _ in w.refs:
        s.step()
    assert "fault" in s.result.value and "not-present" in s.result.value


@pytest.mark.parametrize("text", ["", "0xzz", "-5", "0x", "1" * 17 + "0", "12 34 g"])
def test_bad_address_gives_a_message_and_keeps_the_walk(text):
    s = WalkStepper("first4")
    before = s.walk
    s.load(text)
    assert "svmkit-msg-error" in s.message.value
    assert "Traceback" not in s.message.value
    assert s.walk is before
    s.load("0x7f1234567123")
    assert s.message.value == ""


def test_parse_address_accepts_the_usual_spellings():
    for text in ["0x7f12_3456_7000", "7F1234567000", " 0X7f1234567000 "]:
        assert parse_address(text) == 0x7F12_3456_7000
    with pytest.raises(ValueError, match="wider than 64 bits"):
        parse_address("0x1" + "0" * 16)


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(list(S.PLAIN)), va=st.integers(0, (1 << 64) - 1),
       access=st.sampled_from("rwx"))
def test_any_address_gives_a_walk_or_a_message(key, va, access):
    s = _steppers.setdefault(key, WalkStepper(key))
    w = s.load(va, access=access)
    assert (w is not None) or "svmkit-msg-error" in s.message.value
    if w is not None:
        for _ in range(len(w.refs) + 1):
            s.step()
        assert count(s) == len(w.refs)


_steppers: dict = {}


def test_a_walk_from_the_plain_api_can_be_stepped():
    s = S.get("first4")
    w = svmkit.walk(s.mem, 0x7F12_3456_7123, root=s.notes["root"])
    st_ = WalkStepper(walk=w, title="plain")
    assert st_.selectors.layout.display == "none"
    st_.step()
    assert lit(st_.grid.value) == 1 and "plain" in st_.grid.value


def test_an_internal_error_is_a_message_not_a_traceback():
    s = WalkStepper("first4")

    def broken(*a, **k):
        raise RuntimeError("boom")

    s.setup.translate, keep = broken, s.setup.translate
    try:
        s.load("0x1000")
        assert "internal error (RuntimeError: boom)" in s.message.value
    finally:
        s.setup.translate = keep


def test_catalogue_offers_the_plain_walks_first():
    keys = list(catalogue())
    assert keys[:5] == ["first4", "first5", "second4", "nested44", "nested55"]


def test_decoded_address_field_points_at_the_next_table():
    s = WalkStepper("first4")
    refs = s.walk.refs
    for k in range(1, len(refs)):
        s.step()
        nxt = refs[k].address & ~0xFFF
        assert f"<td>addr</td><td>{nxt:#x}</td>" in s.entry.value, (k, s.entry.value)
