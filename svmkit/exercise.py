"""Translation exercises, one per seed, in the spirit of the OSTEP homework
simulators (Arpaci-Dusseau, "Operating Systems: Three Easy Pieces",
paging-multilevel-translate.py): a small set of page tables is printed as
memory contents, with an address; the student walks it by hand; the answer
is the full walk.

    >>> ex = make(7)                       # nested by default
    >>> print(ex.question)                 # doctest: +SKIP
    >>> ex.check("0x1234000")              # True or False
    False

Kinds (the tables' formats are the core formats of svmkit):
  "first"   x86-64 4-level tables (Intel SDM 4.5), as a first-stage-only
            PASID (VT-d 3.6) or a CPU: VA -> PA.
  "second"  VT-d second-stage tables (VT-d 3.7/9.8), 3 levels: GPA -> HPA.
  "nested"  a guest's x86-64 tables over a 3-level second stage (VT-d 3.8):
            every guest table pointer and the final GPA go through the
            second stage: 4 * (3 + 1) + 3 = 19 references.
Frames are placed at random (seeded) so no two seeds look alike; about one
problem in four faults (not present, or a write to a read-only page).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import svmkit
from svmkit.memory import Memory
from svmkit.pagetable import PageTable

KINDS = ("nested", "first", "second")
POOL = (0x10, 0x400)        # frame numbers tables and pages are drawn from
SECOND_LEVELS = 3


@dataclass
class Exercise:
    """One problem: ``question`` and ``answer`` are text (72 columns),
    ``walk`` the :class:`svmkit.Walk`, ``address``/``access`` what is asked,
    ``mem`` and the roots to redo it in Python."""

    seed: int
    kind: str
    address: int
    access: str
    question: str
    answer: str
    walk: object
    mem: Memory
    root: int
    second_root: int | None

    @property
    def expected(self):
        """The answer in short: the HPA, or ``"fault"``."""
        return self.walk.pa if self.walk.ok else "fault"

    def check(self, answer) -> bool:
        """Is ``answer`` right? An int or hex/decimal string for the final
        address, or a string naming a fault ("fault", "not-present",
        "permission" ...; a reason must match if given)."""
        if isinstance(answer, bool):
            raise ValueError(f"answer={answer!r}; allowed: an address or 'fault'")
        if isinstance(answer, str):
            a = answer.strip().lower()
            if re.fullmatch(r"(0x[0-9a-f]+|\d+)", a):
                answer = int(a, 0)
            else:
                if self.walk.ok:
                    return False
                return a in ("fault", self.walk.fault.reason,
                             f"{self.walk.fault.stage} {self.walk.fault.reason}")
        if isinstance(answer, int):
            return self.walk.ok and answer == self.walk.pa
        raise ValueError(f"answer={answer!r}; allowed: an address (int or '0x...') or a "
                         "fault name")


class _Frames:
    """Random distinct frames from POOL (seeded), zeroed in ``mem``."""

    def __init__(self, rng, mem, taken):
        self.rng, self.mem, self.taken = rng, mem, taken

    def take(self):
        while True:
            f = self.rng.randrange(*POOL)
            if f not in self.taken:
                self.taken.add(f)
                return f << 12

    def alloc(self):
        pa = self.take()
        self.mem.write(pa, bytes(4096))
        return pa


def _dump(mem, tables, title, to_host=lambda a: a) -> list[str]:
    """Non-zero entries of each table, as an OSTEP-style memory dump."""
    lines = [title]
    for addr in sorted(tables, key=to_host):
        hpa = to_host(addr)
        entries = [(i, mem.read_u64(hpa + 8 * i)) for i in range(512)]
        entries = [(i, e) for i, e in entries if e]
        where = f"page {hpa:#x}" + (f" (GPA {addr:#x})" if hpa != addr else "")
        lines.append(f"  {where}:")
        for i, e in entries:
            lines.append(f"    [{i:3d}] {e:#018x}")
    return lines


def make(seed: int, kind: str = "nested") -> Exercise:
    """A fresh problem for ``seed`` (any int); ``kind`` one of
    :data:`KINDS`. The same seed and kind always give the same problem."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r}; allowed: an integer")
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; allowed: {', '.join(KINDS)}")
    from svmkit.render import text
    rng = random.Random(f"{kind}:{seed}")
    mem = Memory(POOL[1] << 12)
    taken = set()
    hframes = _Frames(rng, mem, taken)
    # Addresses kept in a small corner of the space so hand-walking is
    # about the walk, not about long numbers: a few indexes per level.
    nmap = rng.randrange(3, 6)
    top = 0 if kind == "second" else 1       # a 3-level second stage has no bit 39
    vas = sorted({(rng.randrange(top + 1) << 39 | rng.randrange(3) << 30
                   | rng.randrange(4) << 21 | rng.randrange(512) << 12) for _ in range(nmap)})
    perms = {va: rng.choice(["rw", "rw", "r"]) for va in vas}
    if kind == "first":
        pt = PageTable(mem, hframes.alloc, fmt="x86_64", levels=4, phys_bits=39)
        for va in vas:
            pt.map(va, hframes.take(), 4096, write="w" in perms[va], user=True, xd=True)
        root, second_root, tables, to_host = pt.root, None, pt.tables, None
    else:
        sl = PageTable(mem, hframes.alloc, fmt="vtd_sl", levels=SECOND_LEVELS, phys_bits=39)
        if kind == "second":
            for va in vas:
                sl.map(va, hframes.take(), 4096, r=True, w="w" in perms[va])
            root, second_root, tables, to_host = sl.root, None, sl.tables, None
        else:
            # The guest's frames: GPAs, each backed by a random host frame.
            gmap = {}
            gtaken = set()
            gframes = _Frames(rng, mem, gtaken)

            def guest_alloc():
                gpa = gframes.take()
                hpa = hframes.take()
                sl.map(gpa, hpa, 4096, r=True, w=True)
                mem.write(hpa, bytes(4096))
                gmap[gpa] = hpa
                return gpa

            def g2h(gpa):
                return gmap[gpa & ~0xFFF] + (gpa & 0xFFF)

            gpt = PageTable(mem, guest_alloc, fmt="x86_64", levels=4, phys_bits=39,
                            to_host=g2h)
            for va in vas:
                gpa = gframes.take()
                gpt.map(va, gpa, 4096, write="w" in perms[va], user=True, xd=True)
                if rng.random() < 0.85:     # sometimes the host never backed it
                    sl.map(gpa, hframes.take(), 4096, r=True, w=True)
            root, second_root = gpt.root, sl.root
            tables, to_host = gpt.tables, g2h
    # The question: mostly a mapped address, sometimes one beside a mapping.
    va = rng.choice(vas) | rng.randrange(4096)
    if rng.random() < 0.2:
        va ^= 1 << (12 + 9 * rng.randrange(2))
    access = "w" if rng.random() < 0.3 else "r"
    kw = dict(root=root, access=access, phys_bits=39, engine="reference")
    if kind == "first":
        kw.update(fmt="x86_64", levels=4, user=True)
    elif kind == "second":
        kw.update(fmt="vtd_sl", levels=SECOND_LEVELS)
    else:
        kw.update(fmt="x86_64", levels=4, user=True, second_root=second_root,
                  second_levels=SECOND_LEVELS)
    q = [f"svmkit exercise, seed {seed}, kind {kind}", ""]
    act = "write" if access == "w" else "read"
    if kind == "first":
        q += [f"A user-mode {act} at VA {va:#x}.",
              f"x86-64 4-level tables (Intel SDM 4.5), root (CR3/FLPTPTR) {root:#x}.",
              "Entries: P bit 0, R/W bit 1, U/S bit 2, PS bit 7, address 51:12, XD 63."]
    elif kind == "second":
        q += [f"A DMA {act} at GPA {va:#x}.",
              f"VT-d second-stage tables, {SECOND_LEVELS} levels (VT-d 9.8), root "
              f"(SLPTPTR) {root:#x}.",
              "Entries: R bit 0, W bit 1, PS bit 7, address 51:12. R=W=0: not present."]
    else:
        q += [f"A user-mode {act} at GVA {va:#x}, nested (VT-d 3.8).",
              f"Guest x86-64 4-level tables, root (FLPTPTR) GPA {root:#x}.",
              f"Second stage: {SECOND_LEVELS} levels, root (SLPTPTR) HPA {second_root:#x}.",
              "Every guest table address is a GPA: walk it through the second",
              "stage first (19 references for a 4 KiB page)."]
    q.append("Index bits: level 4 47:39, 3 38:30, 2 29:21, 1 20:12.")
    q.append("")
    if kind == "nested":
        q += _dump(mem, sl.tables, "Second-stage tables (HPA):")
        q += _dump(mem, tables, "Guest tables:", to_host)
    else:
        q += _dump(mem, tables, "Tables:")
    q += ["", "What physical address does it reach, or which fault stops it?"]
    # Walk after printing: a completed walk sets accessed flags (SDM 4.8).
    w = svmkit.walk(mem, va, **kw)
    a = ["Answer:", text.walk_text(w, name={"first": "VA", "second": "GPA",
                                             "nested": "GVA"}[kind])]
    return Exercise(seed, kind, va, access, "\n".join(q) + "\n", "\n".join(a), w, mem, root,
                    second_root)
