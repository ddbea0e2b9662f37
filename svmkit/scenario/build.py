"""Building a scenario into one ``Memory``: frames allocated, page tables
written, the IOMMU's structures written through the model's ``Driver`` (one
small adapter per model, :mod:`svmkit.scenario.adapters`), and a symbol
table that names any address ("VM vm1 process 'app' PML4 table").

Memory layout (host-physical), chosen so that pictures stay readable:
  0 .. 1 MiB           unused (as on a PC)
  1 MiB .. T           host tables: IOMMU structures, host page tables,
                       second-stage tables (a ``FrameAllocator``)
  T .. memory          host processes' pages and each VM's RAM, carved in
                       order, aligned to the page sizes they use.
A VM's RAM is one contiguous host-physical block mapped at GPA 0 by its
second stage with the largest pages that fit (a simplification: a real VMM's
RAM is scattered; contiguity keeps the isolation picture legible and does
not change any walk). Inside a VM the guest's page tables come from a guest
frame allocator low in its RAM, and its processes' pages are carved above.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from svmkit.memory import FrameAllocator, Memory
from svmkit.pagetable import PageTable
from svmkit.scenario.model import HOST, Mapping, bdf_str, parse_bdf, parse_size
from svmkit.scenario.models import info, table_phys_bits

PAGE = 4096
MiB = 1 << 20


class Carver:
    """Hands out aligned address ranges from ``base`` to ``limit`` without
    touching memory (data pages are never written, so never installed)."""

    def __init__(self, base, limit, what):
        self.next, self.limit, self.what = base, limit, what

    def take(self, size, align=PAGE):
        a = -(-self.next // align) * align
        if a + size > self.limit:
            raise MemoryError(f"{self.what}: no room for {size:#x} bytes below {self.limit:#x}")
        self.next = a + size
        return a


@dataclass(frozen=True)
class Symbol:
    start: int
    end: int
    owner: str      # "host", "iommu", a VM name, or "vm1/app", "host/drv"
    kind: str       # "PML4 table", "PASID table", "RAM", "pages" ...
    detail: str = ""

    @property
    def domain(self) -> str:
        """Whose memory it is for isolation: a VM's name or "host"."""
        d = self.owner.split("/")[0]
        return HOST if d == "iommu" else d

    def describe(self) -> str:
        if self.owner == "iommu":
            who = "IOMMU"
        elif "/" in self.owner:
            o, p = self.owner.split("/", 1)
            who = f"{'host' if o == HOST else 'VM ' + o} process '{p}'"
        else:
            who = "host" if self.owner == HOST else f"VM {self.owner}"
        return f"{who} {self.kind}" + (f" ({self.detail})" if self.detail else "")


class Symbols:
    """Which frames hold what, of whom. Ranges may nest (a VM's page tables
    inside its RAM); a lookup answers with the smallest range holding it."""

    def __init__(self):
        self.items: list[Symbol] = []

    def add(self, start, size, owner, kind, detail=""):
        self.items.append(Symbol(start, start + size, owner, kind, detail))

    def pages(self) -> set:
        """Start addresses of the symbols that name single structures (not
        whole regions such as RAM), so nothing is registered twice."""
        return {s.start for s in self.items if s.kind.endswith(("table", "directory"))}

    def lookup(self, pa):
        best = None
        for s in self.items:
            if s.start <= pa < s.end and (best is None or s.end - s.start < best.end - best.start):
                best = s
        return best

    def name(self, pa) -> str:
        """``"VM vm1 process 'app' PML4 table +0x18"``, or ``"unowned"``."""
        s = self.lookup(pa)
        if s is None:
            return f"unowned {pa:#x}"
        off = pa - s.start
        return s.describe() + (f" +{off:#x}" if off else "")

    def domain(self, pa) -> str:
        s = self.lookup(pa)
        return HOST if s is None else s.domain


def table_name(fmt, level) -> str:
    """``"PML4 table"`` from the format's entry name at ``level`` ("pml4e")."""
    n = fmt.level_names.get(level, f"level-{level}e")
    return (n[:-1] if n.endswith("e") else n).upper() + " table"


# Leaf permission keywords of each format's ``leaf`` builder (docs of each
# format module); a new format adds one line here.
def leaf_perms(fmt_name, perms, user=True):
    if fmt_name == "x86_64":
        return dict(write="w" in perms, user=user, xd="x" not in perms)
    if fmt_name == "vtd_sl":
        return dict(r="r" in perms, w="w" in perms, x="x" in perms)
    if fmt_name == "arm64_s1":
        return dict(write="w" in perms, user=user, uxn="x" not in perms, pxn=True)
    if fmt_name == "amd_v1":
        return dict(read="r" in perms, write="w" in perms)
    if fmt_name == "arm64_s2":
        return dict(read="r" in perms, write="w" in perms, xn="x" not in perms)
    from svmkit import formats
    f = formats.get(fmt_name)
    if hasattr(f, "leaf_kwargs"):
        return f.leaf_kwargs(perms, user=user)
    raise ValueError(f"fmt={fmt_name!r} has no permission mapping for scenarios")


def split_pages(va, pa, size, sizes, page_size=None):
    """``(va, pa, page)`` pieces covering a range with the largest pages both
    addresses are aligned to (or ``page_size`` everywhere)."""
    out = []
    end = va + size
    while va < end:
        if page_size:
            ps = page_size
        else:
            ps = max(s for s in sizes if va % s == 0 and pa % s == 0 and va + s <= end)
        out.append((va, pa, ps))
        va, pa = va + ps, pa + ps
    return out


@dataclass
class Space:
    """Where a process's or VM's memory lives: its table allocator (returns
    addresses as the owner sees them), its page carver, and how its
    addresses reach host memory."""

    alloc: object
    carver: Carver
    to_host: object
    base: int = 0


class _GuestFrames:
    """A guest kernel's frame allocator: frames at GPAs, zeroed in host memory
    through the VM's (contiguous) RAM."""

    def __init__(self, mem, base_hpa, gpa0, gpa_limit):
        self.inner = FrameAllocator(mem, base_hpa + gpa0, base_hpa + gpa_limit)
        self.base = base_hpa

    def alloc(self, frames=1):
        return self.inner.alloc(frames) - self.base


@dataclass
class Built:
    """A scenario built into memory. ``translate`` answers a device's request;
    ``apply`` runs the next step; ``symbols.name(pa)`` names an address."""

    scenario: object
    mem: Memory
    adapter: object
    symbols: Symbols
    minfo: object
    host_alloc: FrameAllocator
    host_carver: Carver
    vm_ram: dict = field(default_factory=dict)        # vm -> (hpa base, size)
    spaces: dict = field(default_factory=dict)        # owner -> Space
    first: dict = field(default_factory=dict)         # process qname -> PageTable
    second: dict = field(default_factory=dict)        # vm -> PageTable
    binds: dict = field(default_factory=dict)         # (rid, pasid) -> process qname
    log: list = field(default_factory=list)           # (label, writes, invalidations)
    steps_done: int = 0

    @property
    def iommu(self):
        return self.adapter.iommu

    def rid(self, device) -> int:
        d = self.scenario.get_device(device) if isinstance(device, str) else None
        if d is not None:
            return d.rid
        if isinstance(device, int):
            return device
        return parse_bdf(device)

    def translate(self, device, address, *, pasid=None, access="r", privileged=False):
        """The device's request through the IOMMU model: a ``Walk``."""
        return self.adapter.translate(self.rid(device), address, pasid=pasid, access=access,
                                      privileged=privileged)

    def name(self, pa) -> str:
        return self.symbols.name(pa)

    # -- building ----------------------------------------------------------------------------

    def _register_tables(self, owner, pt, to_host):
        known = self.symbols.pages()
        for addr, level in pt.tables.items():
            hpa = to_host(addr)
            if hpa is not None and hpa not in known:
                detail = f"GPA {addr:#x}" if hpa != addr else ""
                self.symbols.add(hpa, PAGE, owner, table_name(pt.fmt, level), detail)

    def map(self, qname, m: Mapping, record=None):
        """Back and map one mapping of process ``qname``."""
        proc = self.scenario.get_process(qname)
        sp = self.spaces[proc.owner]
        pt = self.first[qname]
        sizes = [s for s in self.minfo.first_page_sizes if s <= m.size]
        align = m.page_size or max(s for s in sizes if m.va % s == 0)
        backing = sp.carver.take(m.size, align)
        for va, pa, ps in split_pages(m.va, backing, m.size, sizes, m.page_size):
            slot = pt.map(va, pa, ps, **leaf_perms(pt.fmt.name, m.perms))
            if record is not None:
                # The slot was empty: mappings never overlap a live one (a
                # remap clears first).
                record.append((sp.to_host(slot), 0, self.mem.read_u64(sp.to_host(slot)),
                               f"{qname} leaf for {va:#x}"))
        hb = sp.to_host(backing)
        where = f"GPA {backing:#x}" if proc.owner != HOST else ""
        self.symbols.add(hb, m.size, qname, f"pages at {m.va:#x}", where)
        self._register_tables(qname, pt, sp.to_host)

    def unmap(self, qname, va, size):
        """Clear the mappings of process ``qname`` in ``va .. va+size``,
        found by reading its tables. A large page that sticks out of the
        range is split first, as an OS does: the parts outside are mapped
        again to the same frames with smaller pages."""
        from svmkit.graphs import leaves
        proc = self.scenario.get_process(qname)
        pt, sp = self.first[qname], self.spaces[proc.owner]
        writes = []
        end = va + size
        for x in leaves(self.mem, pt.root, pt.fmt.name, pt.levels, to_host=sp.to_host):
            if x.end <= va or x.va >= end:
                continue
            old = self.mem.read_u64(x.entry)
            slot = pt.unmap(x.va)
            if slot is not None:
                writes.append((sp.to_host(slot), old, 0, f"{qname} unmap {x.va:#x}"))
            perms = "r" + ("w" if "w" in x.rights else "") + ("x" if "x" in x.rights else "")
            smaller = [p for p in self.minfo.first_page_sizes if p < x.size]
            for lo, hi in ((x.va, max(x.va, va)), (min(x.end, end), x.end)):
                if lo < hi:
                    for pva, ppa, ps in split_pages(lo, x.pa + (lo - x.va), hi - lo, smaller):
                        leaf = pt.map(pva, ppa, ps, **leaf_perms(pt.fmt.name, perms))
                        writes.append((sp.to_host(leaf), 0, self.mem.read_u64(
                            sp.to_host(leaf)), f"{qname} split {pva:#x}"))
        return writes

    def apply(self, step=None):
        """Run the next step (or ``step``, a Step) and log its writes and
        invalidations; returns the log entry."""
        s = self.scenario
        if step is None:
            if self.steps_done >= len(s.steps):
                raise ValueError(f"step: all {len(s.steps)} steps are done")
            step = s.steps[self.steps_done]
            self.steps_done += 1
        a = step.args
        label = step.name or step.action
        if step.action == "bind":
            ops = self._bind(a["process"], self.rid(a["device"]), a["pasid"])
        elif step.action == "unbind":
            rid = self.rid(a["device"])
            ops = self.adapter.unbind(rid, a["pasid"])
            self.binds.pop((rid, a["pasid"]), None)
        elif step.action in ("map", "remap"):
            # remap: what an OS does when a page moves (migration, copy on
            # write): clear the leaves, then map fresh pages, then flush.
            m = Mapping(int(a["va"]), parse_size(a["size"]), a.get("perms", "rw"),
                        None if a.get("page_size") is None else parse_size(a["page_size"]))
            writes = self.unmap(a["process"], m.va, m.size) if step.action == "remap" else []
            self.map(a["process"], m, writes)
            ops = (writes, self._flush(a["process"], m.va, m.size))
        elif step.action == "unmap":
            va, size = int(a["va"]), parse_size(a["size"])
            ops = (self.unmap(a["process"], va, size), self._flush(a["process"], va, size))
        elif step.action == "pasid-entry":
            kw = {}
            if "second_of" in a:
                kw["second_root"] = self.second[a["second_of"]].root
            if "first_of" in a:
                kw["first_root"] = self.first[a["first_of"]].root
            ops = self.adapter.modify(self.rid(a["device"]), a["pasid"], **kw)
        else:
            raise ValueError(f"step.action={step.action!r}; allowed: bind, unbind, map, "
                             "unmap, remap, pasid-entry")
        self._register_structures()
        entry = (label, *self.adapter.ops(ops))
        self.log.append(entry)
        return entry

    def run(self):
        """Apply every remaining step."""
        while self.steps_done < len(self.scenario.steps):
            self.apply()
        return self

    def _flush(self, qname, va, size):
        invs = []
        for (rid, pasid), q in self.binds.items():
            if q == qname:
                invs += self.adapter.flush(rid, pasid, va, size)
        return invs

    def _bind(self, qname, rid, pasid, second_of=None):
        proc = self.scenario.get_process(qname)
        pt = self.first[qname]
        if proc.owner == HOST:
            ops = self.adapter.bind(rid, pasid, first_root=pt.root, first_levels=proc.levels)
        else:
            vm = second_of or proc.owner
            ops = self.adapter.bind(rid, pasid, first_root=pt.root, first_levels=proc.levels,
                                    nested=True, second_root=self.second[vm].root,
                                    second_levels=self.scenario.get_vm(vm).second_levels)
        self.binds[(rid, pasid)] = qname
        return ops

    def _register_structures(self):
        known = self.symbols.pages()
        for hpa, size, kind, detail in self.adapter.structures():
            if hpa not in known:
                # A structure in a VM's RAM is the guest's (a VT-d 2.x nested
                # PASID table, an SMMUv3 CD table, an AMD-Vi GCR3 table).
                dom = self.symbols.domain(hpa)
                owner = "iommu" if dom == HOST else dom
                self.symbols.add(hpa, size, owner, kind,
                                 detail + (", guest-owned" if owner != "iommu" else ""))
                known.add(hpa)


def build(s, *, caches=None, run_steps=False, **model_options) -> Built:
    """Build scenario ``s`` (validated first) into memory. Steps are not
    applied unless ``run_steps``; call ``Built.apply()`` for each.
    ``caches``: the model's cache configuration, or "off" for none (every
    walk then shows all its references)."""
    from svmkit.scenario.adapters import adapter_for
    s.validate()
    minfo = info(s.model)
    mem = Memory(s.memory)
    table_top = MiB + max(16 * MiB, s.memory // 32)
    table_top = -(-table_top // (2 * MiB)) * (2 * MiB)
    host_alloc = FrameAllocator(mem, MiB, table_top)
    carver = Carver(table_top, s.memory, "host memory")
    sym = Symbols()
    if s.image is not None:
        return _build_image(s, mem, host_alloc, carver, sym, minfo, caches, model_options)
    sym.add(MiB, table_top - MiB, HOST, "table frames")
    adapter = adapter_for(s, mem, host_alloc, caches=caches, **model_options)
    b = Built(s, mem, adapter, sym, minfo, host_alloc, carver)
    b.spaces[HOST] = Space(host_alloc, carver, lambda a: a)
    # VM RAM and its second stage.
    for v in s.vms:
        align = 1 << 30 if v.ram >= 1 << 30 else 2 * MiB
        base = carver.take(v.ram, align)
        b.vm_ram[v.name] = (base, v.ram)
        sym.add(base, v.ram, v.name, "RAM", f"GPA 0..{v.ram:#x}")
        pb = table_phys_bits(s.model, s.phys_bits)
        if hasattr(adapter, "new_table"):     # a format the PageTable cannot build
            sl = adapter.new_table(mem, host_alloc, minfo.second_fmt, v.second_levels, pb)
        else:
            sl = PageTable(mem, host_alloc.alloc, fmt=minfo.second_fmt, levels=v.second_levels,
                           phys_bits=pb)
        for gpa, hpa, ps in split_pages(0, base, v.ram, minfo.second_page_sizes):
            sl.map(gpa, hpa, ps, **leaf_perms(minfo.second_fmt, "rw"))
        b.second[v.name] = sl
        b._register_tables(v.name, sl, lambda a: a)
        gtop = min(v.ram // 4, 64 * MiB)
        gtop = max(gtop, 2 * MiB)
        to_host = (lambda base, ram: lambda g: base + g if 0 <= g < ram else None)(base, v.ram)
        frames = _GuestFrames(mem, base, MiB, gtop)
        b.spaces[v.name] = Space(frames, Carver(gtop, v.ram, f"VM {v.name} RAM"), to_host, base)
        sym.add(base + MiB, gtop - MiB, v.name, "guest table frames")
    # Processes.
    for p in s.processes():
        sp = b.spaces[p.owner]
        pt = PageTable(mem, sp.alloc.alloc, fmt=minfo.first_fmt, levels=p.levels,
                       phys_bits=table_phys_bits(s.model, s.phys_bits), to_host=sp.to_host)
        b.first[p.qname] = pt
        for m in p.maps:
            b.map(p.qname, m)
        b._register_tables(p.qname, pt, sp.to_host)
    # Devices, then binds, through the model's driver.
    for d in s.devices:
        if d.owner == HOST or d.shared:
            # A shared device's context is the host's; its PASIDs go to VMs.
            ops = adapter.attach(d.rid, owner=HOST)
        else:
            v = s.get_vm(d.owner)
            ops = adapter.attach(d.rid, second_root=b.second[v.name].root,
                                 second_levels=v.second_levels, owner=v.name,
                                 guest_alloc=b.spaces[v.name].alloc.alloc,
                                 **({"guest_to_host": b.spaces[v.name].to_host}
                                    if s.model == "amdvi" else {}))
        b.log.append((f"attach {d.bdf}", *adapter.ops(ops)))
    for bd in s.binds:
        rid = s.get_device(bd.device).rid
        ops = b._bind(bd.process, rid, bd.pasid, bd.second_of)
        b.log.append((f"bind {bd.process} to {bdf_str(rid)} PASID {bd.pasid}", *adapter.ops(ops)))
    b._register_structures()
    if run_steps:
        b.run()
    return b


def _build_image(s, mem, host_alloc, carver, sym, minfo, caches, model_options):
    """A scenario holding a memory image (an import of a real machine's
    tables, svmkit.debugfs): the qwords are written as they are, and the
    model's adapter reads them from the given root table."""
    from svmkit.scenario.adapters import adapter_for
    im = s.image
    for pa, v in im["qwords"]:
        mem.write_u64(pa, v)
    adapter = adapter_for(s, mem, host_alloc, caches=caches, root=im["root_table"],
                          ttm=im["ttm"], **model_options)
    b = Built(s, mem, adapter, sym, minfo, host_alloc, carver)
    for pa, size, kind, detail in im["labels"]:
        sym.add(pa, size, HOST, kind, detail)
    b._register_structures()
    return b
