"""SMMUv3 caches (STE, CD, TLB) and the commands that invalidate them: what stays stale
until which command."""

import pytest
from hypothesis import given, settings, strategies as st

from svmkit import FrameAllocator, Memory
from svmkit.formats import arm64_s1, arm64_s2
from svmkit.smmuv3 import Driver, Guest, Iommu, map_page, new_root
from svmkit.smmuv3 import commands as C
from svmkit.smmuv3.tables import entry_address

S1, S2 = arm64_s1.FORMAT, arm64_s2.FORMAT
VA = 0x7F00_1234_5000
PA, PA2 = 0x2_0000_0000, 0x3_0000_0000
D1 = S1.descriptor(4, 48)


def system(caches=True, invalidate=True):
    mem = Memory(1 << 36)
    alloc = FrameAllocator(mem, 0x100000)
    smmu = Iommu.new(mem, alloc, caches=caches)
    return mem, alloc, smmu, Driver(mem, alloc, smmu, invalidate=invalidate)


def tables(mem, alloc, **leaf):
    root = new_root(alloc, D1)
    map_page(mem, alloc, root, VA, PA, S1, D1, **leaf)
    return root


def remap(mem, root, va, pa, **leaf):
    """Point the page at ``va`` elsewhere, as an OS does, without telling the SMMU."""
    mem.write_u64(entry_address(mem, root, va, D1, 1), S1.leaf(pa, **leaf))


def test_second_translation_hits_every_cache():
    mem, alloc, smmu, drv = system()
    drv.bind(1, 1, first_root=tables(mem, alloc))
    first = smmu.translate(1, VA, pasid=1)
    again = smmu.translate(1, VA + 8, pasid=1)
    assert again.pa == first.pa + 8 and again.refs == []
    assert again.cache == {"ste": "hit", "cd": "hit", "tlb": "hit"}
    assert smmu.caches.hits == {"ste": 1, "cd": 1, "tlb": 1}
    assert smmu.caches.misses == {"ste": 1, "cd": 1, "tlb": 1}


def test_without_caches_every_translation_walks():
    mem, alloc, smmu, drv = system(caches=False)
    root = tables(mem, alloc)
    drv.bind(1, 1, first_root=root)
    refs = [len(smmu.translate(1, VA, pasid=1).refs) for _ in range(3)]
    assert refs == [6, 6, 6] and smmu.translate(1, VA, pasid=1).cache == {}
    remap(mem, root, VA, PA2)
    assert smmu.translate(1, VA, pasid=1).pa == PA2


def test_stale_pte_until_tlbi_nh_va():
    mem, alloc, smmu, drv = system()
    root = tables(mem, alloc)
    drv.bind(1, 1, first_root=root)
    assert smmu.translate(1, VA, pasid=1).pa == PA
    remap(mem, root, VA, PA2)
    assert smmu.translate(1, VA, pasid=1).pa == PA               # stale
    smmu.invalidate(C.CMD_TLBI_NH_VA(asid=drv.streams[1].asids[1], addr=VA + 0x1000))
    assert smmu.translate(1, VA, pasid=1).pa == PA               # another page
    ops = drv.flush(1, 1, VA)
    assert [c.name for c in ops.commands] == ["CMD_TLBI_NH_VA", "CMD_SYNC"]
    assert smmu.translate(1, VA, pasid=1).pa == PA2


def test_stale_permission_until_invalidated():
    mem, alloc, smmu, drv = system()
    root = tables(mem, alloc)
    drv.bind(1, 1, first_root=root)
    assert smmu.translate(1, VA, pasid=1, access="w").ok
    remap(mem, root, VA, PA, write=False)
    assert smmu.translate(1, VA, pasid=1, access="w").ok           # cached write right
    drv.flush(1, 1, VA)
    assert smmu.translate(1, VA, pasid=1).ok
    w = smmu.translate(1, VA, pasid=1, access="w")                 # TLB hit, right refused
    assert w.cache["tlb"] == "hit" and w.fault.name == "F_PERMISSION"


def test_nh_asid_drops_one_address_space_and_spares_global_entries():
    mem, alloc, smmu, drv = system()
    va2 = VA + 0x10_0000
    root1 = tables(mem, alloc)
    root2 = new_root(alloc, D1)
    map_page(mem, alloc, root2, va2, PA, S1, D1, ng=False)         # a global page
    drv.bind(1, 1, first_root=root1)
    drv.bind(1, 2, first_root=root2)
    a1, a2 = drv.streams[1].asids[1], drv.streams[1].asids[2]
    assert a1 != a2
    assert smmu.translate(1, VA, pasid=1).pa == PA
    assert smmu.translate(1, va2, pasid=2).pa == PA
    # a global TLB entry serves every ASID, even one whose tables do not map the page
    assert smmu.translate(1, va2, pasid=1).pa == PA
    remap(mem, root1, VA, PA2)
    remap(mem, root2, va2, PA2, ng=False)
    smmu.invalidate(C.CMD_TLBI_NH_ASID(asid=a1))
    smmu.invalidate(C.CMD_TLBI_NH_ASID(asid=a2))
    assert smmu.translate(1, VA, pasid=1).pa == PA2
    assert smmu.translate(1, va2, pasid=2).pa == PA                 # global: survives
    smmu.invalidate(C.CMD_TLBI_NH_VAA(addr=va2))
    assert smmu.translate(1, va2, pasid=2).pa == PA2
    w = smmu.translate(1, va2, pasid=1)                            # the refilled global entry
    assert w.pa == PA2 and w.cache["tlb"] == "hit"
    smmu.invalidate(C.CMD_TLBI_NH_ALL())
    assert smmu.translate(1, va2, pasid=1).fault.name == "F_TRANSLATION"


def test_stale_cd_until_cfgi_cd_then_tlbi():
    mem, alloc, smmu, drv = system(invalidate=False)
    root1 = tables(mem, alloc)
    drv.bind(1, 1, first_root=root1, asid=5)
    for cmd in (C.CMD_CFGI_STE(1), C.CMD_CFGI_CD(1, 1)):
        smmu.invalidate(cmd)
    assert smmu.translate(1, VA, pasid=1).pa == PA
    root2 = new_root(alloc, D1)
    map_page(mem, alloc, root2, VA, PA2, S1, D1)
    ops = drv.modify(1, 1, first_root=root2)
    assert [c.name for c in ops.commands] == ["CMD_CFGI_CD", "CMD_SYNC", "CMD_TLBI_NH_ASID",
                                              "CMD_SYNC"]
    smmu.invalidate(C.CMD_TLBI_NH_ASID(5))
    w = smmu.translate(1, VA, pasid=1)
    assert w.pa == PA and w.cache["cd"] == "hit"                    # the CD itself is stale
    smmu.invalidate(C.CMD_CFGI_CD(1, 1))
    assert smmu.translate(1, VA, pasid=1).pa == PA                  # the TLB still holds it
    smmu.invalidate(C.CMD_TLBI_NH_ASID(5))
    assert smmu.translate(1, VA, pasid=1).pa == PA2


@pytest.mark.parametrize("cmd", [C.CMD_CFGI_STE(1), C.CMD_CFGI_STE_RANGE(0, 1),
                                 C.CMD_CFGI_ALL()])
def test_stale_ste_until_cfgi_ste(cmd):
    mem, alloc, smmu, drv = system(invalidate=False)
    drv.bind(1, 1, first_root=tables(mem, alloc))
    assert smmu.translate(1, VA, pasid=1).ok
    drv.detach(1, to="invalid")
    assert smmu.translate(1, VA, pasid=1).ok                        # cached STE and TLB
    smmu.invalidate(cmd)
    assert smmu.translate(1, VA, pasid=1).fault.name == "C_BAD_STE"


def test_cfgi_cd_all_and_range_miss():
    mem, alloc, smmu, drv = system()
    drv.bind(1, 1, first_root=tables(mem, alloc))
    smmu.translate(1, VA, pasid=1)
    smmu.invalidate(C.CMD_CFGI_STE_RANGE(2, 0))                    # streams 2 and 3 only
    assert smmu.translate(1, VA, pasid=1).cache["ste"] == "hit"
    smmu.invalidate(C.CMD_CFGI_CD_ALL(1))
    assert smmu.translate(1, VA, pasid=1).cache == {"ste": "hit", "cd": "miss", "tlb": "hit"}


def nested():
    mem = Memory(1 << 36)
    alloc = FrameAllocator(mem, 0x100000)
    smmu = Iommu.new(mem, alloc)
    drv = Driver(mem, alloc, smmu)
    d2 = S2.descriptor(4, 48)
    s2root = new_root(alloc, d2)
    guest = Guest(mem, alloc, s2root, d2)
    s1root = new_root(guest, D1)
    map_page(guest, guest, s1root, VA, 0x8000_0000, S1, D1)
    guest.map(0x8000_0000, PA)
    drv.bind(0x40, 1, first_root=s1root, nested=True, second_root=s2root,
             guest_alloc=guest.alloc)
    map_page(mem, alloc, s2root, 0x10_0000_0000, PA, S2, d2)
    drv.attach(0x41, config="s2", second_root=s2root, vmid=drv.streams[0x40].vmid)
    return mem, smmu, drv, guest, s2root, d2


def test_stage2_change_needs_nh_all_for_nested_entries():
    mem, smmu, drv, guest, s2root, d2 = nested()
    vmid = drv.streams[0x40].vmid
    assert smmu.translate(0x40, VA, pasid=1).pa == PA
    assert smmu.translate(0x41, 0x10_0000_0000).pa == PA
    for ipa in (0x8000_0000, 0x10_0000_0000):
        mem.write_u64(entry_address(mem, s2root, ipa, d2, 1), S2.leaf(PA2))
    smmu.invalidate(C.CMD_TLBI_S2_IPA(addr=0x8000_0000, vmid=vmid))
    smmu.invalidate(C.CMD_TLBI_S2_IPA(addr=0x10_0000_0000, vmid=vmid))
    assert smmu.translate(0x41, 0x10_0000_0000).pa == PA2           # stage 2 only entry gone
    assert smmu.translate(0x40, VA, pasid=1).pa == PA               # combined entry stale
    smmu.invalidate(C.CMD_TLBI_NH_ALL(vmid=vmid + 1))               # another VM
    assert smmu.translate(0x40, VA, pasid=1).pa == PA
    ops = drv.flush(0x40, address=0x8000_0000, stage=2)
    assert [c.name for c in ops.commands] == ["CMD_TLBI_S2_IPA", "CMD_SYNC",
                                              "CMD_TLBI_NH_ALL", "CMD_SYNC"]
    assert smmu.translate(0x40, VA, pasid=1).pa == PA2


@pytest.mark.parametrize("cmd,survives", [
    (lambda vmid: C.CMD_TLBI_S12_VMALL(vmid), False),
    (lambda vmid: C.CMD_TLBI_S12_VMALL(vmid + 1), True),
    (lambda vmid: C.CMD_TLBI_NSNH_ALL(), False),
])
def test_vm_wide_invalidation(cmd, survives):
    mem, smmu, drv, guest, s2root, d2 = nested()
    vmid = drv.streams[0x40].vmid
    smmu.translate(0x40, VA, pasid=1)
    smmu.translate(0x41, 0x10_0000_0000)
    smmu.invalidate(cmd(vmid))
    hits = [smmu.translate(0x40, VA, pasid=1).cache["tlb"],
            smmu.translate(0x41, 0x10_0000_0000).cache["tlb"]]
    assert hits == (["hit", "hit"] if survives else ["miss", "miss"])


def test_tlb_caches_blocks_as_one_entry():
    mem, alloc, smmu, drv = system()
    root = new_root(alloc, D1)
    map_page(mem, alloc, root, 0x4000_0000, PA, S1, D1, level=2)    # a 2 MiB block
    drv.bind(1, 1, first_root=root)
    smmu.translate(1, 0x4000_0000, pasid=1)
    w = smmu.translate(1, 0x401F_F000, pasid=1)
    assert w.cache["tlb"] == "hit" and w.pa == PA + 0x1F_F000 and w.page_size == 1 << 21
    smmu.invalidate(C.CMD_TLBI_NH_VA(drv.streams[1].asids[1], 0x4010_0000))
    assert smmu.translate(1, 0x4000_0000, pasid=1).cache["tlb"] == "miss"


@given(st.sampled_from(C.COMMANDS), st.integers(0, (1 << 16) - 1), st.integers(0, 0xFFFFF))
def test_command_encodings_hold_opcode_and_ids(cls, n, ssid):
    """The first doubleword carries the opcode; CFGI commands the StreamID in 63:32 and
    TLBI commands the VMID in 47:32 and the ASID in 63:48."""
    kw = {"sid": n, "ssid": ssid, "asid": n, "vmid": n ^ 0x5A5A, "addr": n << 12}
    names = cls.__dataclass_fields__
    cmd = cls(**{k: v for k, v in kw.items() if k in names})
    w0, w1 = cmd.encode()
    assert w0 & 0xFF == cls.opcode and cmd.name == cls.__name__
    if "sid" in names:
        assert w0 >> 32 == n
    if "vmid" in names:
        assert (w0 >> 32) & 0xFFFF == n ^ 0x5A5A
    if "asid" in names:
        assert w0 >> 48 == n
    if "ssid" in names:
        assert (w0 >> 12) & 0xFFFFF == ssid and w0 >> 11 & 1
    if "addr" in names:
        assert w1 & ~0xFFF == n << 12


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([(1, 1), (1, 2), (1, None), (2, None), (3, 5)]),
                          st.integers(-3, 600), st.sampled_from("rwx"), st.booleans()),
                min_size=1, max_size=25))
def test_caches_never_change_a_result_while_memory_stays(ops):
    """With no memory changed, a cached SMMU answers every translation as an uncached one
    does: ok, address, event and level (only refs and cache stats differ)."""
    results = []
    for caches in (True, False):
        mem = Memory(1 << 36)
        alloc = FrameAllocator(mem, 0x100000)
        smmu = Iommu.new(mem, alloc, caches=caches)
        drv = Driver(mem, alloc, smmu)
        root = new_root(alloc, D1)
        map_page(mem, alloc, root, VA, PA, S1, D1, write=False)
        map_page(mem, alloc, root, VA + 0x1000, PA2, S1, D1, ng=False, uxn=True)
        map_page(mem, alloc, root, 0x4000_0000, PA, S1, D1, level=2, user=False)
        drv.attach(1, s1cdmax=3, s1dss="bypass")
        drv.bind(1, 1, first_root=root)
        drv.bind(1, 2, first_root=root)
        drv.attach(2, config="s2", second_root=root)     # the same tables read as stage 2
        out = []
        for (sid, pasid), page, access, priv in ops:
            addr = (0x4000_0000 if page > 500 else VA) + page * 0x800
            w = smmu.translate(sid, addr, pasid=pasid, access=access, privileged=priv)
            out.append((w.ok, w.pa, w.fault and (w.fault.name, w.fault.stage, w.fault.level)))
        results.append(out)
    assert results[0] == results[1]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 2, None]), st.integers(0, 7),
                          st.sampled_from("rwx"), st.booleans()), min_size=1, max_size=20))
def test_nested_caches_never_change_a_result(ops):
    """The same for a nested stream: stage 1 and stage 2 rights, global pages, S1DSS
    bypass to stage 2 alone."""
    results = []
    for caches in (True, False):
        mem = Memory(1 << 36)
        alloc = FrameAllocator(mem, 0x100000)
        smmu = Iommu.new(mem, alloc, caches=caches)
        drv = Driver(mem, alloc, smmu)
        d2 = S2.descriptor(4, 48)
        s2root = new_root(alloc, d2)
        guest = Guest(mem, alloc, s2root, d2)
        s1root = new_root(guest, D1)
        for i in range(8):                 # page i: stage 1 and stage 2 rights vary with i
            map_page(guest, guest, s1root, VA + i * 0x1000, 0x8000_0000 + i * 0x1000, S1, D1,
                     write=i & 1 == 0, user=i & 2 == 0, ng=i != 5)
            guest.map(0x8000_0000 + i * 0x1000, PA + i * 0x1000, write=i & 4 == 0,
                      xn=i == 3)
        drv.attach(7, config="nested", second_root=s2root, guest_alloc=guest.alloc,
                   s1cdmax=2, s1dss="bypass")
        drv.bind(7, 1, first_root=s1root, nested=True)
        drv.bind(7, 2, first_root=s1root, nested=True)
        out = []
        for pasid, page, access, priv in ops:
            addr = (VA if pasid else 0x8000_0000) + page * 0x1000 + 8
            w = smmu.translate(7, addr, pasid=pasid, access=access, privileged=priv)
            out.append((w.ok, w.pa, w.fault and (w.fault.name, w.fault.stage, w.fault.level,
                                                 w.fault.cls, w.fault.ipa)))
        results.append(out)
    assert results[0] == results[1]
