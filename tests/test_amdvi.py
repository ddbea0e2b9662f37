"""The AMD-Vi model: DTE and GCR3 decoding, host/guest/nested translation, events, Driver."""

import pytest
from hypothesis import given, settings, strategies as st

from svmkit import FrameAllocator, Memory, walk
from svmkit.amdvi import CacheConfig, Driver, Event, GuestSpace, Iommu
from svmkit.pagetable import map_page
from svmkit.amdvi import commands as C
from svmkit.amdvi.dte import (DTE_FIELDS, DTE_RESERVED, decode_dte, encode_dte,
                              gcr3_entry)
from svmkit.amdvi.events import EVENT_CODES, io_page_fault_flags
from svmkit.formats import amd_v1, x86_64

DEV = 0x0310                                  # 03:02.0
GVA = 0x7F12_3456_7000


class World:
    """Host memory, an IOMMU with its device table, and helpers to build tables."""

    def __init__(self, caches=None):
        self.mem = Memory()
        self.alloc = FrameAllocator(self.mem, base=0x100000)
        self.dt = self.alloc.alloc(512)
        self.io = Iommu(self.mem, device_table=self.dt, caches=caches)

    def host_table(self, levels=4):
        return self.alloc.alloc(), amd_v1.FORMAT.descriptor(levels)

    def process(self, va=GVA, levels=4, alloc=None, to_hpa=None, **leaf):
        """A process page table mapping ``va``; (cr3, data page) in ``alloc``'s space."""
        alloc = alloc or self.alloc
        cr3, page = alloc.alloc(), alloc.alloc()
        map_page(self.mem, alloc, cr3, va, page, x86_64.FORMAT,
                 x86_64.FORMAT.descriptor(levels), to_host=to_hpa, **leaf)
        return cr3, page


def nested_world(m=4, n=4, glx=0, caches=None):
    w = World(caches)
    hroot, _ = w.host_table(m)
    g = GuestSpace(w.mem, w.alloc, hroot, amd_v1.FORMAT, m)
    drv = Driver(w.mem, w.alloc, w.io, guest=g)
    drv.attach(DEV, second_root=hroot, second_levels=m, glx=glx, first_levels=n)
    cr3, page = w.process(levels=n, alloc=g, to_hpa=g.to_hpa)
    return w, g, drv, cr3, page


# -- DTE layout -----------------------------------------------------------------------------

def test_gcr3_root_is_split_where_the_spec_puts_it():
    root = 0xF_EDCB_A987_6000
    q = encode_dte(v=1, gv=1, gcr3_root=root)
    assert q[0] >> 58 & 0x7 == root >> 12 & 0x7
    assert q[1] >> 16 & 0xFFFF == root >> 15 & 0xFFFF
    assert q[1] >> 43 == root >> 31
    assert decode_dte(q)["gcr3_root"] == root


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_dte_round_trip(data):
    fields = {}
    for f in DTE_FIELDS:
        if f.name.startswith("gcr3_") or not data.draw(st.booleans()):
            continue
        v = data.draw(st.integers(0, (1 << (f.hi - f.lo + 1)) - 1))
        fields[f.name] = v << (f.lo % 64) if f.addr else v
    root = data.draw(st.integers(0, (1 << 40) - 1)) << 12
    q = encode_dte(gcr3_root=root, **fields)
    out = decode_dte(q)
    assert out["gcr3_root"] == root and out["reserved"] == 0
    assert all(out[k] == v for k, v in fields.items())


def test_reserved_dte_bits():
    for bit in (2, 6, 63, 106, 180, 181, 187):
        assert DTE_RESERVED >> bit & 1
    for bit in (0, 1, 7, 8, 9, 11, 12, 51, 55, 61, 62, 64, 96, 183, 191):
        assert not DTE_RESERVED >> bit & 1
    with pytest.raises(ValueError, match="mode"):
        encode_dte(mode=8)
    with pytest.raises(ValueError, match="gcr3_root"):
        encode_dte(gcr3_root=0x1234)


# -- translation ----------------------------------------------------------------------------

def test_host_only_translation_and_refs():
    w = World()
    hroot, d = w.host_table(3)
    page = w.alloc.alloc()
    map_page(w.mem, w.alloc, hroot, 0x4000_0000, page, amd_v1.FORMAT, d)
    Driver(w.mem, w.alloc, w.io).attach(DEV, second_root=hroot, second_levels=3, pasid=False)
    r = w.io.translate(DEV, 0x4000_0123)
    assert r.ok and r.pa == page + 0x123
    assert [x.structure for x in r.refs] == ["dte", "pde-l3", "pde-l2", "pte-l1"]
    assert r.refs[0].address == w.dt + 32 * DEV and r.refs[0].stage == "dte"
    # the walk is the same as the core walker's second-stage-only walk
    core = walk(w.mem, 0x4000_0123, root=hroot, fmt="amd_v1", levels=3)
    assert [x.address for x in r.refs[1:]] == [x.address for x in core.refs]


def test_mode0_passes_through_and_dte_rights_apply():
    w = World()
    drv = Driver(w.mem, w.alloc, w.io)
    drv.attach(DEV, pasid=False, iw=False)
    r = w.io.translate(DEV, 0xABC000)
    assert r.ok and r.pa == 0xABC000 and len(r.refs) == 1
    assert r.fmt == "pass-through" and r.cache["iotlb"] == "none"
    f = w.io.translate(DEV, 0xABC000, access="w").fault
    assert f.stage == "dte" and f.reason == "permission" and f.name == "IO_PAGE_FAULT"
    assert f.flags == io_page_fault_flags("permission", "w", gn=False)


def test_invalid_dte_passes_untranslated():
    w = World()
    io = Iommu.new(w.mem, w.alloc)
    assert io.device_table % 4096 == 0 and io.read_dte(0xFFFF)["v"] == 0
    r = w.io.translate(DEV, 0x1234_5000)
    assert r.ok and r.pa == 0x1234_5000 and [x.structure for x in r.refs] == ["dte"]


@pytest.mark.parametrize("q0,q1,reason,name", [
    (0x1 | 1 << 2, 0, "reserved-bit", "ILLEGAL_DEV_TABLE_ENTRY"),
    (0x1, 0, "not-present", "IO_PAGE_FAULT"),                      # V=1, TV=0
    (0x3 | 7 << 9, 0, "invalid-entry", "ILLEGAL_DEV_TABLE_ENTRY"),  # Mode 7
    (0x3 | 1 << 55 | 3 << 56, 0, "invalid-entry", "ILLEGAL_DEV_TABLE_ENTRY"),  # GLX 3
])
def test_dte_faults(q0, q1, reason, name):
    w = World()
    w.mem.write_u64(w.dt + 32 * DEV, q0)
    w.mem.write_u64(w.dt + 32 * DEV + 8, q1)
    r = w.io.translate(DEV, 0x1000)
    assert not r.ok and r.fault.stage == "dte" and r.fault.reason == reason
    assert r.fault.name == name and r.fault.code == EVENT_CODES[name]
    assert w.io.events[-1].name == name and w.io.events[-1].device_id == DEV
    if name == "ILLEGAL_DEV_TABLE_ENTRY":       # only GN, I, RW, RZ, TR are defined
        assert not r.fault.flags & ~0x1A9
        assert bool(r.fault.flags & 0x80) == (reason == "reserved-bit")


def test_pasid_without_gv_is_an_invalid_device_request():
    w = World()
    Driver(w.mem, w.alloc, w.io).attach(DEV, pasid=False)
    f = w.io.translate(DEV, 0x1000, pasid=3).fault
    assert f.name == "INVALID_DEVICE_REQUEST" and f.code == 0x8 and f.stage == "dte"


@pytest.mark.parametrize("glx", [0, 1])
@pytest.mark.parametrize("n", [4, 5])
def test_guest_only_native_sva(glx, n):
    w = World()
    drv = Driver(w.mem, w.alloc, w.io)
    drv.attach(DEV, glx=glx, first_levels=n)
    cr3, page = w.process(levels=n)
    pasid = 0x2A5 if glx else 0x25
    drv.bind(DEV, pasid, first_root=cr3, first_levels=n)
    r = w.io.translate(DEV, GVA + 0x10, pasid=pasid)
    assert r.ok and r.pa == page + 0x10 and not r.nested
    assert len(r.refs) == 1 + (glx + 1) + n
    assert [x.stage for x in r.refs[1:glx + 2]] == ["gcr3"] * (glx + 1)


@pytest.mark.parametrize("m", [3, 4, 5])
@pytest.mark.parametrize("n", [4, 5])
@pytest.mark.parametrize("glx", [0, 1])
def test_nested_reference_count(m, n, glx):
    """DTE + each GCR3 level through the host table + the 2D walk n(m+1)+m."""
    w, g, drv, cr3, page = nested_world(m, n, glx)
    pasid = 0x1FF + glx
    drv.bind(DEV, pasid, first_root=cr3, first_levels=n, nested=True)
    r = w.io.translate(DEV, GVA + 8, pasid=pasid)
    assert r.ok and r.pa == g.to_hpa(page) + 8 and r.gpa == page + 8 and r.nested
    assert len(r.refs) == 1 + (glx + 1) * (m + 1) + n * (m + 1) + m
    assert sum(x.stage == "second" for x in r.refs) == (glx + 1 + n + 1) * m
    # the host walks that find GCR3 entries say so; the DTE ref carries all four qwords
    locating = [x for x in r.refs if x.locates]
    assert len(locating) == (glx + 1) * m and all(x.stage == "second" for x in locating)
    assert locating[-1].locates == "gcr3-entry"
    assert len(r.refs[0].qwords) == 4 and r.refs[0].qwords[0] == r.refs[0].value
    # the guest part is exactly the core nested walk from the guest CR3
    core = walk(w.mem, GVA + 8, root=cr3, fmt="x86_64", levels=n, second_root=g.host_root,
                second_fmt="amd_v1", second_levels=m)
    assert [x.address for x in r.refs[-len(core.refs):]] == [x.address for x in core.refs]


def test_gcr3_faults():
    w, g, drv, cr3, page = nested_world()
    f = w.io.translate(DEV, GVA, pasid=9).fault           # never bound: V=0
    assert f.stage == "gcr3" and f.reason == "not-present" and f.name == "IO_PAGE_FAULT"
    assert f.flags & 1 and not f.flags & 0x10              # GN set, PR clear
    assert w.io.events[-1].pasid == 9
    f = w.io.translate(DEV, GVA, pasid=0x200).fault        # beyond a one-level table
    assert f.stage == "gcr3" and f.reason == "pasid-range"
    drv.bind(DEV, 9, first_root=cr3, nested=True)
    slot = [x for x in w.io.translate(DEV, GVA, pasid=9).refs if x.stage == "gcr3"][0].address
    w.mem.write_u64(slot, w.mem.read_u64(slot) | 1 << 60)
    w.io.invalidate(C.invalidate_iommu_all())
    f = w.io.translate(DEV, GVA, pasid=9).fault
    assert f.stage == "gcr3" and f.reason == "reserved-bit" and f.flags & 0x80


def test_nested_second_stage_fault_on_a_guest_table():
    w, g, drv, cr3, page = nested_world()
    drv.bind(DEV, 1, first_root=cr3, nested=True)
    r = w.io.translate(DEV, GVA, pasid=1)
    pml4_hpa = g.to_hpa(cr3)
    # unmap the guest's PML4 page from the host table: clear the host PTE for GPA cr3
    host_pte = [x for x in r.refs if x.stage == "second" and x.guest_level == 4][-1]
    w.mem.write_u64(host_pte.address, 0)
    w.io.invalidate(C.invalidate_iommu_all())
    f = w.io.translate(DEV, GVA, pasid=1).fault
    # the faulting second-stage input is the GPA of the guest's PML4 entry
    assert f.stage == "second" and f.reason == "not-present" and f.address >> 12 == cr3 >> 12
    assert pml4_hpa != cr3 and f.flags & 1


def test_guest_permission_and_flags():
    w = World()
    drv = Driver(w.mem, w.alloc, w.io)
    cr3, page = w.process(write=False)
    drv.bind(DEV, 4, first_root=cr3)
    f = w.io.translate(DEV, GVA, pasid=4, access="w").fault
    assert f.stage == "first" and f.reason == "permission"
    ev = w.io.events[-1]
    assert {"GN", "PR", "RW", "PE", "US"} == set(ev.flag_names())


def test_sa_suppresses_io_page_fault_logging():
    w = World()
    drv = Driver(w.mem, w.alloc, w.io)
    drv.attach(DEV, pasid=False, sa=True, ir=False)
    r = w.io.translate(DEV, 0x1000)
    assert not r.ok and r.event.name == "IO_PAGE_FAULT" and w.io.events == []


# -- events and commands ------------------------------------------------------------------

def test_event_entry_positions():
    # Linux prints a read of a present page without permission as flags=0x0050 (PR|PE)
    assert io_page_fault_flags("permission", "r", gn=False) == 0x50
    e = Event(EVENT_CODES["IO_PAGE_FAULT"], 0x0310, 0xDEAD_B000, 0x51, pasid=0x12345)
    lo, hi = e.encode()
    assert lo >> 60 == 2 and lo & 0xFFFF == 0x0310 and lo >> 48 & 0xFFF == 0x51
    assert lo >> 32 & 0xFFFF == 0x2345 and lo >> 16 & 0xF == 0x1 and hi == 0xDEAD_B000
    assert Event.decode(lo, hi) == e
    assert "IO_PAGE_FAULT device=03:02.0 pasid=0x12345" in str(e)


def test_command_encoding_and_ranges():
    c = C.invalidate_iommu_pages(7, pasid=5)
    d0, d1, d2, d3 = c.encode()
    assert d1 >> 28 == 3 and d1 & 0xFFFF == 7 and d0 == 5 and d2 & 0x7 == 0x7
    assert (d3 << 32 | d2 & ~0xFFF) == C.ALL_PAGES
    assert c.range() == (0, 1 << 64)
    assert C.invalidate_devtab_entry(0x310).encode()[:2] == (0x310, 2 << 28)
    for size in (1 << 13, 1 << 16, 1 << 21, 1 << 30):
        base = 3 * size
        addr, s = C.encode_range(base + size // 3 & ~(size - 1), size)
        assert s and C.decode_range(addr) == (base, size)
    assert C.invalidate_iommu_pages(1, 0x5000).range() == (0x5000, 0x1000)


# -- caches and invalidation -----------------------------------------------------------------

def test_stale_host_translation_until_invalidate_iommu_pages():
    w = World()
    hroot, d = w.host_table(4)
    p1, p2 = w.alloc.alloc(), w.alloc.alloc()
    map_page(w.mem, w.alloc, hroot, 0x8000, p1, amd_v1.FORMAT, d)
    drv = Driver(w.mem, w.alloc, w.io)
    drv.attach(DEV, second_root=hroot, pasid=False, domain_id=9)
    assert w.io.translate(DEV, 0x8000).pa == p1
    map_page(w.mem, w.alloc, hroot, 0x8000, p2, amd_v1.FORMAT, d)   # no invalidation
    r = w.io.translate(DEV, 0x8000)
    assert r.pa == p1 and r.cache == {"dte": "hit", "iotlb": "hit"} and r.refs == []
    w.io.invalidate(C.invalidate_devtab_entry(DEV))                   # not enough
    assert w.io.translate(DEV, 0x8000).pa == p1
    w.io.invalidate(C.invalidate_iommu_pages(8, 0x8000))              # other domain
    assert w.io.translate(DEV, 0x8000).pa == p1
    w.io.invalidate(C.invalidate_iommu_pages(9, 0x9000))              # other page
    assert w.io.translate(DEV, 0x8000).pa == p1
    w.io.invalidate(C.invalidate_iommu_pages(9, 0x0, 1 << 16))        # a range covering it
    assert w.io.translate(DEV, 0x8000).pa == p2


def test_stale_gcr3_entry_until_gn_invalidation():
    w, g, _, cr3, page = nested_world()
    drv = Driver(w.mem, w.alloc, w.io, guest=g, invalidate=False)
    drv.bind(DEV, 3, first_root=cr3, nested=True)
    w.io.invalidate(C.invalidate_iommu_all())
    assert w.io.translate(DEV, GVA, pasid=3).pa == g.to_hpa(page)
    cr3b, pageb = w.process(alloc=g, to_hpa=g.to_hpa)
    ops = drv.modify(DEV, 3, first_root=cr3b)
    assert [c.name for c in ops.invalidations] == ["INVALIDATE_IOMMU_PAGES"]
    assert ops.invalidations[0].gn and ops.invalidations[0].pasid == 3
    assert w.io.translate(DEV, GVA, pasid=3).pa == g.to_hpa(page)      # stale
    dom = w.io.read_dte(DEV)["domain_id"]
    w.io.invalidate(C.invalidate_iommu_pages(dom, pasid=4))             # other PASID
    assert w.io.translate(DEV, GVA, pasid=3).pa == g.to_hpa(page)
    w.io.invalidate(ops.invalidations[0])
    r = w.io.translate(DEV, GVA, pasid=3)
    assert r.pa == g.to_hpa(pageb) and r.cache["gcr3"] == "miss"


def test_stale_dte_until_invalidate_devtab_entry():
    w = World()
    drv = Driver(w.mem, w.alloc, w.io, invalidate=False)
    drv.attach(DEV, pasid=False)
    w.io.invalidate(C.invalidate_iommu_all())
    assert w.io.translate(DEV, 0x1000, access="w").ok
    ops = drv.modify(DEV, iw=0)
    assert [c.name for c in ops.invalidations] == ["INVALIDATE_DEVTAB_ENTRY"]
    assert w.io.translate(DEV, 0x1000, access="w").ok                  # stale DTE
    w.io.invalidate(ops.invalidations[0])
    assert w.io.translate(DEV, 0x1000, access="w").fault.reason == "permission"


def test_caches_off_every_translation_walks():
    w, g, drv, cr3, page = nested_world(caches=CacheConfig(enabled=False))
    drv.bind(DEV, 2, first_root=cr3, nested=True)
    walks = [w.io.translate(DEV, GVA, pasid=2) for _ in range(3)]
    assert {len(x.refs) for x in walks} == {30}
    assert walks[-1].cache == {"dte": "off", "iotlb": "off", "gcr3": "off"}
    with pytest.raises(ValueError, match="dte_entries"):
        CacheConfig(dte_entries=0)


def test_iotlb_keeps_the_rights_it_checked():
    w = World()
    drv = Driver(w.mem, w.alloc, w.io)
    cr3, page = w.process(write=False)
    drv.bind(DEV, 4, first_root=cr3)
    assert w.io.translate(DEV, GVA, pasid=4).ok
    r = w.io.translate(DEV, GVA, pasid=4, access="w")      # not cached: walks and faults
    assert r.cache["iotlb"] == "miss" and r.fault.reason == "permission"


# -- driver ---------------------------------------------------------------------------------

def test_bind_costs_one_gcr3_write_and_one_invalidation():
    w, g, drv, cr3, page = nested_world()
    ops = drv.bind(DEV, 5, first_root=cr3, nested=True)
    assert len(ops.writes) == 1
    pa, old, new, what = ops.writes[0]
    assert old == 0 and new == gcr3_entry(cr3) and what.startswith("gcr3-entry")
    # the entry is in guest memory: the host frame behind the guest's GCR3 table
    assert pa == g.to_hpa(w.io.read_dte(DEV)["gcr3_root"]) + 5 * 8
    assert [(c.name, c.gn, c.pasid) for c in ops.invalidations] == [
        ("INVALIDATE_IOMMU_PAGES", True, 5)]


def test_two_level_gcr3_table_allocates_the_lower_level():
    w = World()
    drv = Driver(w.mem, w.alloc, w.io)
    drv.attach(DEV, glx=1)
    cr3, page = w.process()
    ops = drv.bind(DEV, 0x605, first_root=cr3)
    assert [x[3].split()[0] for x in ops.writes] == ["gcr3-table-entry", "gcr3-entry"]
    ops = drv.bind(DEV, 0x606, first_root=cr3)
    assert len(ops.writes) == 1
    assert w.io.translate(DEV, GVA, pasid=0x606).ok


def test_unbind_and_detach():
    w = World()
    drv = Driver(w.mem, w.alloc, w.io)
    cr3, page = w.process()
    drv.bind(DEV, 6, first_root=cr3)
    assert w.io.translate(DEV, GVA, pasid=6).ok
    drv.unbind(DEV, 6)
    f = w.io.translate(DEV, GVA, pasid=6).fault
    assert f.stage == "gcr3" and f.reason == "not-present"
    ops = drv.detach(DEV)
    assert ops.invalidations[0].name == "INVALIDATE_DEVTAB_ENTRY"
    assert w.io.translate(DEV, 0x1000).fault.reason == "permission"


def test_argument_errors():
    w = World()
    with pytest.raises(ValueError, match="device_id"):
        w.io.translate(0x10000, 0)
    with pytest.raises(ValueError, match="access"):
        w.io.translate(DEV, 0, access="q")
    with pytest.raises(ValueError, match="pasid"):
        w.io.translate(DEV, 0, pasid=1 << 20)
    with pytest.raises(ValueError, match="cmd"):
        w.io.invalidate("INVALIDATE_IOMMU_ALL")
    drv = Driver(w.mem, w.alloc, w.io)
    hroot, _ = w.host_table()
    with pytest.raises(ValueError, match="guest"):
        drv.attach(DEV, second_root=hroot)          # GCR3 table needs guest memory
    with pytest.raises(ValueError, match="glx"):
        drv.attach(DEV, glx=3)


def test_translate_many_matches_translate():
    w = World()
    drv = Driver(w.mem, w.alloc, w.io)
    cr3, page = w.process()
    drv.bind(DEV, 1, first_root=cr3)
    import numpy as np
    pa, code = w.io.translate_many(DEV, np.array([GVA, GVA + 8, 0x1000]), pasid=1)
    assert list(pa[:2]) == [page, page + 8] and list(code) == [0, 0, 2]


# -- faults are values ----------------------------------------------------------------------

U64S = st.integers(0, (1 << 64) - 1)


@st.composite
def dtes(draw):
    """Mostly well-formed DTEs pointing into the test frames, sometimes with noise."""
    q = encode_dte(v=int(draw(st.integers(0, 9)) > 0), tv=1,
                   mode=draw(st.sampled_from([0, 1, 2, 3, 4, 4, 4, 4, 5, 5, 6, 7])),
                   gv=draw(st.integers(0, 1)),
                   glx=draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3])),
                   gpm=draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2])),
                   ir=int(draw(st.integers(0, 7)) > 0), iw=int(draw(st.integers(0, 7)) > 0),
                   host_pt_root=0x10000 * draw(st.integers(1, 8)),
                   gcr3_root=0x10000 * draw(st.integers(1, 8)), domain_id=3)
    if draw(st.integers(0, 4)):
        return list(q)
    noise = draw(st.lists(st.one_of(st.just(0), U64S), min_size=4, max_size=4))
    return [a ^ b for a, b in zip(q, noise)]


@settings(max_examples=150, deadline=None)
@given(dte=dtes(), entries=st.lists(U64S, min_size=8, max_size=8),
       idx=st.integers(0, 511), pasid_hi=st.one_of(st.none(), st.integers(0, 2047)),
       access=st.sampled_from("rwx"), high=st.sampled_from([0, 0, 0, 1 << 63, 1 << 50, 0xFFF]),
       small=st.booleans(), aim=st.lists(st.booleans(), min_size=8, max_size=8),
       depth=st.integers(1, 5))
def test_any_memory_content_gives_a_walk(dte, entries, idx, pasid_hi, access, high, small,
                                         aim, depth):
    """Whatever the DTE, GCR3 and table entries hold, translate returns ok or a fault with
    an event code; it never raises. Every frame's entry ``idx`` is the one a request with
    index ``idx`` at every level reads, and most point at another test frame, so walks go
    deep (through the GCR3 table, the guest tables and the host table)."""
    mem = Memory(1 << 22 if small else None)
    frames = [0x10000 * (i + 1) for i in range(8)]
    dt = 0x100000
    for f, v in enumerate(entries):
        if aim[f]:          # keep the flags, point the address at another test frame
            v = (v & ~(((1 << 52) - 1) & ~0xFFF)) | frames[(v >> 9) % 8]
        mem.write_u64(frames[f] + 8 * idx, v)
    for i, q in enumerate(dte):
        mem.write_u64(dt + 32 * DEV + 8 * i, q)
    address = sum(idx << (12 + 9 * k) for k in range(depth)) ^ high
    pasid = None if pasid_hi is None else (pasid_hi << 9 | idx)
    io = Iommu(mem, device_table=dt, caches=CacheConfig(enabled=False))
    w = io.translate(DEV, address, pasid=pasid, access=access)
    assert w.ok or (w.fault.code in EVENT_CODES.values() and w.fault.name)
    if w.ok:
        assert w.pa is not None and w.page_size >= 4096


@settings(max_examples=100, deadline=None)
@given(which=st.integers(0, 29), value=U64S, access=st.sampled_from("rwx"),
       privileged=st.booleans())
def test_corrupting_any_entry_of_a_nested_walk_gives_a_value(which, value, access, privileged):
    """Overwrite one of the 30 entries a nested translation reads (DTE qword 0, host table
    entries, the GCR3 entry, guest entries) with any 64-bit value: the translation still
    returns a Walk; a fault names its stage and an event; a success reads no more than the
    30 references."""
    w, g, drv, cr3, page = nested_world(caches=CacheConfig(enabled=False))
    drv.bind(DEV, 2, first_root=cr3, nested=True)
    good = w.io.translate(DEV, GVA, pasid=2)
    assert len(good.refs) == 30
    target = good.refs[which]
    w.mem.write_u64(target.address, value)
    r = w.io.translate(DEV, GVA, pasid=2, access=access, privileged=privileged)
    if r.ok:
        assert len(r.refs) <= 30 + 30        # a corrupted pointer may lead elsewhere
    else:
        assert r.fault.stage in ("dte", "gcr3", "first", "second")
        assert r.fault.name in EVENT_CODES and r.fault.code == EVENT_CODES[r.fault.name]
        # nothing after the fault was read
        assert len(r.refs) <= 30


def test_configure_reports_what_the_structures_select():
    w, g, drv, cr3, page = nested_world()
    drv.bind(DEV, 2, first_root=cr3, nested=True)
    c = w.io.configure(DEV, pasid=2)
    assert c.kind == "nested" and c.first_root == cr3 and c.first_levels == 4
    assert c.second_root == g.host_root and c.second_levels == 4
    assert c.entry_name == "gcr3-entry" and w.mem.read_u64(c.entry) == gcr3_entry(cr3)
    assert w.io.configure(DEV).kind == "second"
    f = w.io.configure(DEV, pasid=3)
    assert f.stage == "gcr3" and f.reason == "not-present"
    assert w.io.configure(0x0001).kind == "untranslated"
    before = w.io.cache_stats()
    w.io.configure(DEV, pasid=2)
    assert w.io.cache_stats() == before          # configure never touches the caches
    w2 = World()
    d2 = Driver(w2.mem, w2.alloc, w2.io)
    cr3b, _ = w2.process()
    d2.bind(DEV, 1, first_root=cr3b)
    c = w2.io.configure(DEV, pasid=1)
    assert c.kind == "first" and c.first_root == cr3b and c.second_levels == 0
    assert w2.io.configure(DEV).kind == "pass-through"


@settings(max_examples=25, deadline=None)
@given(offsets=st.lists(st.integers(0, (1 << 22) - 1), min_size=1, max_size=20),
       access=st.sampled_from("rwx"), kind=st.sampled_from(["host", "native", "nested"]))
def test_translate_many_agrees_with_translate(offsets, access, kind):
    """The compiled bulk path gives the same addresses and event codes as translate."""
    import numpy as np
    if kind == "nested":
        w, g, drv, cr3, page = nested_world(caches=CacheConfig(enabled=False))
        drv.bind(DEV, 2, first_root=cr3, nested=True)
        pasid, base = 2, GVA
    elif kind == "native":
        w = World(CacheConfig(enabled=False))
        cr3, page = w.process(write=False)
        Driver(w.mem, w.alloc, w.io).bind(DEV, 2, first_root=cr3)
        pasid, base = 2, GVA
    else:
        w = World(CacheConfig(enabled=False))
        hroot, d = w.host_table(3)
        for i in range(4):
            map_page(w.mem, w.alloc, hroot, 0x4000_0000 + i * 0x1000, w.alloc.alloc(),
                     amd_v1.FORMAT, d, write=i % 2 == 0)
        Driver(w.mem, w.alloc, w.io).attach(DEV, second_root=hroot, second_levels=3,
                                            pasid=False)
        pasid, base = None, 0x4000_0000
    addrs = np.array([base + o for o in offsets], dtype=np.uint64)
    pa, code = w.io.translate_many(DEV, addrs, pasid=pasid, access=access)
    for a, p_, c in zip(addrs, pa, code):
        r = w.io.translate(DEV, int(a), pasid=pasid, access=access)
        assert (int(p_), int(c)) == ((r.pa, 0) if r.ok else (0, r.fault.code))


def test_bind_keeps_the_host_table_of_an_attached_device():
    w, g, drv, cr3, page = nested_world()
    hroot = w.io.read_dte(DEV)["host_pt_root"]
    # a device attached without PASID support, then bound: GV added, host table kept
    w.mem.write_u64(w.dt + 32 * DEV, w.mem.read_u64(w.dt + 32 * DEV) & ~(1 << 55))
    drv.bind(DEV, 1, first_root=cr3, nested=True)
    d = w.io.read_dte(DEV)
    assert d["gv"] and d["host_pt_root"] == hroot and d["mode"] == 4
    assert w.io.translate(DEV, GVA, pasid=1).ok
    with pytest.raises(ValueError, match="second_root"):
        drv.bind(DEV, 2, first_root=cr3, nested=True, second_root=hroot + 0x1000)
    with pytest.raises(ValueError, match="nested=False"):
        drv.bind(DEV, 3, first_root=cr3)


def test_walk_carries_the_decoded_config():
    w, g, drv, cr3, page = nested_world()
    drv.bind(DEV, 2, first_root=cr3, nested=True)
    for _ in range(2):                      # from the walk, then from the caches
        r = w.io.translate(DEV, GVA, pasid=2)
        assert r.config == w.io.configure(DEV, pasid=2)
        assert r.config.kind == "nested" and r.config.first_root == cr3
    w.mem.write_u64(w.dt + 32 * DEV, w.mem.read_u64(w.dt + 32 * DEV) | 1 << 3)
    w.io.invalidate(C.invalidate_devtab_entry(DEV))
    assert w.io.translate(DEV, GVA, pasid=2).config is None     # reserved bit: no config
