"""Checking a scenario: every mistake with its file, key path, what is wrong
and what is allowed, all at once (a teacher fixing a file wants the list,
not one error per run)."""

from __future__ import annotations

from dataclasses import dataclass

from svmkit.scenario.model import ACTIONS, HOST, PERMS, STEP_OPTIONAL, parse_bdf, parse_size
from svmkit.scenario.models import MODELS, first_width


@dataclass
class Problem:
    path: str          # key path in the file: vm[0].process[1].map[2].va
    what: str          # what is wrong
    allowed: str = ""  # what is allowed instead
    file: str | None = None

    def __str__(self):
        where = f"{self.file}: " if self.file else ""
        tail = f"; allowed: {self.allowed}" if self.allowed else ""
        return f"{where}{self.path}: {self.what}{tail}"


class ScenarioError(ValueError):
    """A scenario that cannot be built; ``.problems`` lists every one. The
    message is one line per problem."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))

    def first_line(self) -> str:
        more = len(self.problems) - 1
        return str(self.problems[0]) + (f" (and {more} more)" if more > 0 else "")


def _hx(v):
    return f"{v:#x}"


def _sizes(ps):
    from svmkit.render.text import size_name
    return ", ".join(size_name(p) for p in ps)


def check_mappings(proc, path, minfo, problems):
    """Mappings of one process: perms, page size in the format, alignment,
    width, overlap."""
    if proc.levels not in minfo.first_levels:
        problems.append(Problem(f"{path}.levels", f"{proc.levels!r} levels",
                                f"{', '.join(map(str, minfo.first_levels))} for "
                                f"{minfo.first_fmt} under {minfo.name}"))
        return
    top = 1 << (first_width(proc.levels) - 1)   # the lower (user) half of the width
    spans = []
    for k, m in enumerate(proc.maps):
        p = f"{path}.map[{k}]"
        if m.perms not in PERMS:
            problems.append(Problem(f"{p}.perms", f"{m.perms!r} is not a permission set",
                                    ", ".join(PERMS) + " (x86-64 and VMSA have no write-only)"))
        if m.size <= 0 or m.size % 4096:
            problems.append(Problem(f"{p}.size", f"{m.size!r} is not a positive multiple of 4 KiB",
                                    "4 KiB multiples"))
            continue
        if m.va < 0 or m.va % 4096:
            problems.append(Problem(f"{p}.va", f"{_hx(m.va)} is not 4 KiB aligned",
                                    "4 KiB-aligned addresses"))
            continue
        if m.va + m.size > top:
            problems.append(Problem(
                f"{p}.va", f"{_hx(m.va)}+{_hx(m.size)} is beyond the {first_width(proc.levels)}"
                f"-bit width of a {proc.levels}-level {minfo.first_fmt} walk",
                f"0 to {_hx(top)} (the lower half; use levels = 5 for more)"))
            continue
        if m.page_size is not None:
            if m.page_size not in minfo.first_page_sizes:
                problems.append(Problem(f"{p}.page_size", f"{m.page_size!r} bytes is not a page "
                                        f"size of {minfo.first_fmt}",
                                        _sizes(minfo.first_page_sizes)))
            elif m.va % m.page_size or m.size % m.page_size:
                problems.append(Problem(f"{p}.page_size", f"va {_hx(m.va)} and size "
                                        f"{_hx(m.size)} are not both multiples of "
                                        f"{_hx(m.page_size)}",
                                        "a page size dividing both, or none to pick the best"))
        spans.append((m.va, m.va + m.size, k))
    spans.sort()
    for (a0, a1, ka), (b0, b1, kb) in zip(spans, spans[1:]):
        if b0 < a1:
            problems.append(Problem(f"{path}.map[{kb}]", f"overlaps map[{ka}] "
                                    f"({_hx(b0)}..{_hx(b1)} and {_hx(a0)}..{_hx(a1)})",
                                    "disjoint ranges per process"))


def check(s, file=None):
    """Raise ScenarioError with every problem of scenario ``s``."""
    problems: list[Problem] = []
    file = file or s.source
    minfo = MODELS.get(s.model)
    if minfo is None:
        problems.append(Problem("model", f"{s.model!r} is not an IOMMU model", ", ".join(MODELS)))
        raise ScenarioError([_f(p, file) for p in problems])
    if not 32 <= s.phys_bits <= 52:
        problems.append(Problem("host.phys_bits", f"{s.phys_bits!r}", "32 to 52"))
    if s.memory <= 0 or s.memory % (2 << 20) or s.memory > (1 << min(s.phys_bits, 52)):
        problems.append(Problem("host.memory", f"{s.memory!r} bytes",
                                f"a multiple of 2 MiB up to 2^phys_bits"))
    pasid_bits = s.options.get("pasid_bits", minfo.pasid_bits)
    if not isinstance(pasid_bits, int) or not 1 <= pasid_bits <= minfo.pasid_bits:
        problems.append(Problem("options.pasid_bits", f"{pasid_bits!r}",
                                f"1 to {minfo.pasid_bits} for {minfo.name}"))
        pasid_bits = minfo.pasid_bits
    if s.image is not None:
        for key, items in (("vm", s.vms), ("host.process", s.host_processes),
                           ("bind", s.binds), ("step", s.steps)):
            if items:
                problems.append(Problem(key, "is not allowed with [image]",
                                        "an image scenario has only devices and the image"))
        top = max([pa + 8 for pa, _ in s.image["qwords"]], default=0)
        if top > s.memory:
            problems.append(Problem("host.memory", f"{s.memory:#x} is below the image's "
                                    f"highest address {top:#x}", f"at least {top:#x}"))
    names = set()
    total = 0
    for i, v in enumerate(s.vms):
        p = f"vm[{i}]"
        if v.name in names or v.name == HOST or "/" in v.name or not v.name:
            problems.append(Problem(f"{p}.name", f"{v.name!r} is empty, reused, 'host' or has '/'",
                                    "a unique name without '/'"))
        names.add(v.name)
        if v.ram <= 0 or v.ram % (2 << 20):
            problems.append(Problem(f"{p}.ram", f"{v.ram!r} bytes", "a positive multiple of 2 MiB"))
        total += max(v.ram, 0)
        if v.second_levels not in minfo.second_levels:
            problems.append(Problem(f"{p}.second_levels", f"{v.second_levels!r}",
                                    f"{', '.join(map(str, minfo.second_levels))} for "
                                    f"{minfo.second_fmt}"))
        elif v.ram > 1 << (12 + 9 * v.second_levels):
            problems.append(Problem(f"{p}.ram", f"{v.ram:#x} does not fit a {v.second_levels}"
                                    "-level second stage", "more second_levels or less RAM"))
        backing = 0
        for j, proc in enumerate(v.processes):
            check_mappings(proc, f"{p}.process[{j}]", minfo, problems)
            backing += sum(m.size for m in proc.maps)
        if backing > v.ram // 2:
            problems.append(Problem(f"{p}.ram", f"{v.ram:#x} bytes cannot back {backing:#x} bytes "
                                    "of mappings and the guest's tables",
                                    "RAM of at least twice the mapped size"))
    for j, proc in enumerate(s.host_processes):
        check_mappings(proc, f"host.process[{j}]", minfo, problems)
        total += sum(m.size for m in proc.maps)
    if total > s.memory // 2:
        problems.append(Problem("host.memory", f"{s.memory:#x} bytes cannot hold {total:#x} bytes "
                                "of VM RAM and host mappings plus tables",
                                "at least twice their sum"))
    seen = {}
    for owner_path, procs in [("host", s.host_processes)] + \
            [(f"vm[{i}]", v.processes) for i, v in enumerate(s.vms)]:
        for j, proc in enumerate(procs):
            if proc.qname in seen or not proc.name or "/" in proc.name:
                problems.append(Problem(f"{owner_path}.process[{j}].name",
                                        f"{proc.name!r} is empty, has '/' or is reused",
                                        "a name unique within its host or VM"))
            seen[proc.qname] = proc
    rids = {}
    for i, d in enumerate(s.devices):
        p = f"device[{i}]"
        try:
            rid = parse_bdf(d.bdf, "bdf")
        except ValueError:
            problems.append(Problem(f"{p}.bdf", f"{d.bdf!r} is not a PCI address",
                                    "'bus:dev.fn' in hex, e.g. '00:02.0'"))
            continue
        if rid in rids:
            problems.append(Problem(f"{p}.bdf", f"{d.bdf!r} is already device[{rids[rid]}]",
                                    "one entry per device"))
        rids[rid] = i
        for o in d.owners:
            if o != HOST and s.get_vm(o) is None or (d.shared and o == HOST):
                problems.append(Problem(f"{p}.vm", f"{o!r} is not a VM of this scenario",
                                        ", ".join(v.name for v in s.vms) or "no VM defined"))
    def check_pasid(path, pasid):
        if not isinstance(pasid, int) or isinstance(pasid, bool) or \
                not 1 <= pasid < (1 << pasid_bits):
            problems.append(Problem(path, f"{pasid!r} is outside the {pasid_bits}-bit PASID space",
                                    f"1 to {(1 << pasid_bits) - 1} (0 is the RID_PASID "
                                    "of requests without a PASID)"))

    def check_bind(path, proc, dev):
        pr = s.get_process(proc)
        if pr is None:
            problems.append(Problem(f"{path}.process", f"{proc!r} is not a process",
                                    ", ".join(sorted(seen)) or "no process defined"))
        de = s.get_device(dev)
        if de is None:
            problems.append(Problem(f"{path}.device", f"{dev!r} is not a device of this scenario",
                                    ", ".join(d.bdf for d in s.devices) or "no device defined"))
        if pr is not None and de is not None and pr.owner not in de.owners:
            problems.append(Problem(path, f"process {proc!r} is in {pr.owner!r} but device "
                                    f"{dev!r} is assigned to {' and '.join(de.owners)!r}",
                                    "a device bound to a process of its own host or VM"))

    bound = {}
    for i, b in enumerate(s.binds):
        p = f"bind[{i}]"
        check_pasid(f"{p}.pasid", b.pasid)
        check_bind(p, b.process, b.device)
        if b.second_of is not None:
            pr = s.get_process(b.process)
            if s.get_vm(b.second_of) is None:
                problems.append(Problem(f"{p}.second_of", f"{b.second_of!r} is not a VM",
                                        ", ".join(v.name for v in s.vms) or "no VM defined"))
            elif pr is not None and pr.owner == HOST:
                problems.append(Problem(f"{p}.second_of", "a host process has no second stage",
                                        "second_of only for a process in a VM"))
            elif s.model == "vtd-ecs":
                problems.append(Problem(f"{p}.second_of", "in VT-d extended-context mode the "
                                        "second stage is the device's (context entry)",
                                        "no second_of with model 'vtd-ecs'"))
        key = (s.get_device(b.device).rid if s.get_device(b.device) else b.device, b.pasid)
        if key in bound:
            problems.append(Problem(f"{p}.pasid", f"PASID {b.pasid} of {b.device} is already "
                                    f"bound by bind[{bound[key]}]",
                                    "one bind per device and PASID"))
        bound[key] = i
    for i, st in enumerate(s.steps):
        p = f"step[{i}]"
        if st.action not in ACTIONS:
            problems.append(Problem(f"{p}.action", f"{st.action!r}", ", ".join(ACTIONS)))
            continue
        need, opt = ACTIONS[st.action], STEP_OPTIONAL[st.action]
        for k in need:
            if k not in st.args:
                problems.append(Problem(f"{p}.{k}", f"missing for action {st.action!r}",
                                        f"keys {', '.join(need + opt)}"))
        for k in st.args:
            if k not in need + opt:
                problems.append(Problem(f"{p}.{k}", f"unknown key for action {st.action!r}",
                                        f"keys {', '.join(need + opt)}"))
        a = st.args
        if "pasid" in a:
            check_pasid(f"{p}.pasid", a["pasid"])
        if st.action == "bind" and {"process", "device"} <= set(a):
            check_bind(p, a["process"], a["device"])
        elif "device" in a and s.get_device(a["device"]) is None:
            problems.append(Problem(f"{p}.device", f"{a['device']!r} is not a device of this "
                                    "scenario", ", ".join(d.bdf for d in s.devices) or "none"))
        if st.action in ("map", "unmap", "remap") and "process" in a:
            pr = s.get_process(a["process"])
            if pr is None:
                problems.append(Problem(f"{p}.process", f"{a['process']!r} is not a process",
                                        ", ".join(sorted(seen))))
            elif {"va", "size"} <= set(a):
                from svmkit.scenario.model import Mapping, Process
                try:
                    m = Mapping(int(a["va"]), parse_size(a["size"]), a.get("perms", "rw"),
                                None if a.get("page_size") is None
                                else parse_size(a["page_size"], "page_size"))
                except (ValueError, TypeError) as e:
                    problems.append(Problem(p, str(e)))
                else:
                    sub = []
                    check_mappings(Process(pr.name, pr.owner, pr.levels, [m]), p, minfo, sub)
                    for q in sub:   # a step has its keys at its top level
                        q.path = q.path.replace(f"{p}.map[0]", p)
                    problems += sub
        if st.action == "pasid-entry":
            if not ({"second_of", "first_of"} & set(a)):
                problems.append(Problem(p, "a pasid-entry step changes nothing",
                                        "second_of = VM name and/or first_of = process"))
            if "second_of" in a and s.get_vm(a["second_of"]) is None:
                problems.append(Problem(f"{p}.second_of", f"{a['second_of']!r} is not a VM",
                                        ", ".join(v.name for v in s.vms) or "no VM defined"))
            if "first_of" in a and s.get_process(a["first_of"]) is None:
                problems.append(Problem(f"{p}.first_of", f"{a['first_of']!r} is not a process",
                                        ", ".join(sorted(seen))))
    if problems:
        raise ScenarioError([_f(p, file) for p in problems])
    return s


def _f(p, file):
    p.file = p.file or file
    return p
