"""The exercise widget: a seed gives a problem, an answer box, Check, and Reveal with
the full walk.

Problems:
- "translate" (nested, first level, second level): :func:`svmkit.exercise.make` prints
  the tables as memory contents and asks where an address goes;
- "count": the same tables, asking how many memory references the walk makes;
- "invalidate": a change to a VT-d PASID entry or to a bound process's page table, asking
  which invalidation descriptors it needs; the answer is what the model's ``Driver``
  issues (VT-d 6.5.3), so the widget never keeps its own list.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from html import escape

import ipywidgets as W

from ._common import Base, guarded, message_html
from .stepper import WalkStepper

KINDS = {
    "translate: nested walk": ("translate", "nested"),
    "translate: first level": ("translate", "first"),
    "translate: second level": ("translate", "second"),
    "count the references (nested)": ("count", "nested"),
    "which invalidation? (VT-d)": ("invalidate", None),
}
#: The VT-d invalidation descriptors by their spec names (VT-d 6.5.2).
DESCRIPTORS = ("cc_inv_dsc", "pc_inv_dsc", "iotlb_inv_dsc", "p_iotlb_inv_dsc",
               "dev_tlb_inv_dsc", "p_dev_tlb_inv_dsc")


@dataclass
class Problem:
    """One problem: ``question`` text, ``check(answer) -> bool``, ``answer`` text, the
    ``walk`` to reveal (None for an invalidation problem), ``expected`` in short."""

    question: str
    answer: str
    expected: object
    walk: object
    check: object


def translation_problem(seed: int, kind: str) -> Problem:
    from svmkit import exercise
    ex = exercise.make(seed, kind)
    return Problem(ex.question, ex.answer,
                   f"{ex.expected:#x}" if isinstance(ex.expected, int) else ex.expected,
                   ex.walk, ex.check)


def count_problem(seed: int, kind: str = "nested") -> Problem:
    from svmkit import exercise
    ex = exercise.make(seed, kind)
    n = len(ex.walk.refs)
    q = ex.question.rstrip().rsplit("\n", 1)[0] + (
        "\nHow many memory references does the walk make (up to and including the "
        "one that faults, if it faults)?\n")

    def check(answer):
        text = str(answer).strip()
        if not re.fullmatch(r"\d+", text):
            raise ValueError(f"answer: {text!r} is not a whole number")
        return int(text) == n

    return Problem(q, ex.answer, n, ex.walk, check)


# The changes an invalidation problem makes, as (description, action on the editor).
def _changes(rng, pasid, process, va):
    did = rng.randrange(20, 90)
    return [
        (f"The driver unbinds PASID {pasid} (clears the PASID entry's P bit).",
         lambda d, rid: d.unbind(rid, pasid)),
        (f"The driver switches PASID {pasid}'s entry from nested to second-level only "
         "(PGTT 011b -> 010b).",
         lambda d, rid: d.modify(rid, pasid, pgtt="second")),
        (f"The driver gives PASID {pasid} a new domain id (DID {did}).",
         lambda d, rid: d.modify(rid, pasid, did=did)),
        (f"The guest kernel unmaps the page at GVA {va:#x} of {process}, which is bound "
         f"at PASID {pasid}.", None),
    ]


def invalidation_problem(seed: int) -> Problem:
    from svmkit import scenario
    rng = random.Random(f"invalidate:{seed}")
    s = scenario.load("nested-vtd")
    b = s.build(invalidate=False)
    bind = s.binds[0]
    rid = s.get_device(bind.device).rid
    proc = s.get_process(bind.process)
    va = proc.maps[0].va
    changes = _changes(rng, bind.pasid, bind.process, va)
    text, action = changes[rng.randrange(len(changes))]
    if action is None:
        _label, _writes, invs = b.apply(scenario.Step(
            "unmap", {"process": bind.process, "va": va, "size": "4 KiB"}))
    else:
        invs = list(action(b.adapter.driver, rid).invalidations)
    names = sorted({d.name for d in invs if d.name in DESCRIPTORS})
    q = (f"svmkit exercise, seed {seed}: invalidation (VT-d scalable mode)\n\n"
         f"Device {bind.device} is assigned to a VM; PASID {bind.pasid} of it is bound "
         f"nested to {bind.process}.\n{text}\n\nWhich invalidation descriptors must "
         "software issue before the change is safe? Answer with their names, comma "
         f"separated, from: {', '.join(DESCRIPTORS)}.\n")
    answer = ("The driver (VT-d 6.5.3, Linux intel/pasid.c order) issues:\n"
              + "\n".join(f"  {d}" for d in invs))

    def check(reply):
        got = {x.strip() for x in re.split(r"[,\s]+", str(reply)) if x.strip()}
        unknown = got - set(DESCRIPTORS)
        if unknown:
            raise ValueError(f"answer: {', '.join(sorted(unknown))} is not a descriptor "
                             f"name; allowed: {', '.join(DESCRIPTORS)}")
        return got == set(names)

    return Problem(q, answer, ", ".join(names), None, check)


def make_problem(seed: int, kind: str) -> Problem:
    """The problem of ``seed`` for ``kind``, a key of :data:`KINDS`."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; allowed: {', '.join(KINDS)}")
    what, sub = KINDS[kind]
    if what == "translate":
        return translation_problem(seed, sub)
    if what == "count":
        return count_problem(seed, sub)
    return invalidation_problem(seed)


class ExerciseWidget(Base):
    """Seed, problem, answer box, Check, Reveal (with the full walk in a stepper)."""

    def __init__(self, seed=1, kind="translate: nested walk"):
        self.problem = None
        self.kind = W.Dropdown(options=list(KINDS), value=kind, description="Problem",
                               layout=W.Layout(width="420px"))
        self.seed = W.IntText(value=seed, description="Seed", layout=W.Layout(width="200px"))
        self.new_b = W.Button(description="New problem", icon="refresh")
        self.question = W.HTML()
        self.question.add_class("svmkit-question")
        self.answer = W.Text(description="Answer", placeholder="0x1234000, fault, 19, ...",
                             continuous_update=False, layout=W.Layout(width="520px"))
        self.check_b = W.Button(description="Check", button_style="primary", icon="check")
        self.reveal_b = W.Button(description="Reveal", button_style="warning", icon="eye")
        self.verdict = W.HTML()
        self.verdict.add_class("svmkit-verdict")
        self.revealed = W.VBox()
        self.new_b.on_click(lambda b: self.new())
        self.kind.observe(lambda ch: self.new(), "value")
        self.check_b.on_click(lambda b: self.check())
        self.answer.observe(lambda ch: self.check() if ch["new"] else None, "value")
        self.reveal_b.on_click(lambda b: self.reveal())
        super().__init__([W.HBox([self.kind, self.seed, self.new_b]), self.question,
                          W.HBox([self.answer, self.check_b, self.reveal_b]), self.verdict,
                          self.revealed])
        self.new()

    @guarded
    def new(self):
        self.problem = None
        self.revealed.children = ()
        self.verdict.value = ""
        self.problem = make_problem(int(self.seed.value), self.kind.value)
        self.question.value = f"<pre>{escape(self.problem.question)}</pre>"
        self.show_message()

    @guarded
    def check(self, answer=None):
        """Check ``answer`` (or the box's text); shows and returns the verdict."""
        if self.problem is None:
            return None
        text = self.answer.value if answer is None else str(answer)
        if not text.strip():
            self.verdict.value = message_html("Type an answer first.", "info")
            return None
        ok = bool(self.problem.check(text))
        self.verdict.value = message_html(
            "Right." if ok else "Not quite: try again, or Reveal.", "ok" if ok else "error")
        self.show_message()
        return ok

    @guarded
    def reveal(self):
        p = self.problem
        if p is None:
            return
        kids = [W.HTML(f"<pre>{escape(p.answer)}</pre>")]
        if p.walk is not None:
            kids.append(WalkStepper(walk=p.walk, title="the full walk"))
        self.revealed.children = kids
