"""Structure layouts, invalidation descriptors, and garbage in every structure."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svmkit.vtd import CacheConfig, invalidation as inv
from svmkit.vtd import structures as S
from svmkit.vtd.faults import LEGACY_REASONS, SCALABLE_REASONS
from test_vtd_rig import Rig

ALL = [S.root_entry, S.sm_root_entry, S.context_entry, S.sm_context_entry,
       S.ext_context_entry, S.pasid_dir_entry, S.pasid_entry, S.ext_pasid_entry]
SID = 0x0310


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.name)
def test_fields_do_not_overlap_and_fit(s):
    seen = 0
    for f in s.fields.values():
        assert f.mask & seen == 0, f.name
        assert f.hi < 64 * s.qwords
        seen |= f.mask
    assert s.reserved_mask & seen == 0


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.name)
@given(data=st.data())
def test_encode_decode_round_trip(s, data):
    values = {}
    for f in s.fields.values():
        if data.draw(st.booleans()):
            if f.addr:
                values[f.name] = data.draw(st.integers(0, (1 << min(f.width, 40)) - 1)) << 12
            else:
                values[f.name] = data.draw(st.integers(0, (1 << f.width) - 1))
    q = s.encode(**values)
    assert len(q) == s.qwords
    out = s.decode(q)
    for name, v in values.items():
        assert out[name] == v
    assert s.reserved(q, 52) == 0


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.name)
@given(bit=st.integers(0, 511))
def test_every_reserved_bit_is_reported(s, bit):
    if bit >= 64 * s.qwords:
        return
    q = [0] * s.qwords
    q[bit // 64] = 1 << (bit % 64)
    expect = bool(s.reserved_mask >> bit & 1)
    assert bool(s.reserved(q, 52, addr_fields=[])) == expect


def test_address_bits_above_haw_are_reserved():
    q = S.pasid_dir_entry.encode(p=1, ptp=1 << 45)
    assert S.pasid_dir_entry.reserved(q, 48) == 0
    assert S.pasid_dir_entry.reserved(q, 45) == 1 << 45
    q = S.sm_root_entry.encode(up=1, uctp=1 << 40)
    assert S.sm_root_entry.reserved(q, 39) == 1 << (76 + 40 - 12)
    q = S.pasid_entry.encode(p=1, pgtt=1, flptptr=1 << 47, slptptr=1 << 47)
    assert S.pasid_entry.reserved(q, 46, ["slptptr"]) == 1 << 47
    assert S.pasid_entry.reserved(q, 46, []) == 0


def test_known_bit_positions():
    """Positions as VT-d §9.4/§9.6 (and Linux pasid.h) draw them."""
    ce = S.sm_context_entry.encode(p=1, fpd=1, dte=1, paside=1, pre=1, pdts=5,
                                   pasiddirptr=0xABC000, rid_pasid=0xFFFFF, rid_priv=1)
    assert ce[0] == 0xABC000 | 5 << 9 | 0b11111
    assert ce[1] == 0xFFFFF | 1 << 20
    pe = S.pasid_entry.encode(p=1, fpd=1, aw=2, pgtt=3, ssade=1, slptptr=0x5000, did=0x1234,
                              sre=1, flpm=1, wpe=1, flptptr=0x7000)
    assert pe[0] == 0x5000 | 1 << 9 | 3 << 6 | 2 << 2 | 3
    assert pe[1] == 0x1234
    assert pe[2] == 0x7000 | 1 << 4 | 1 << 2 | 1
    assert S.pasid_dir_size(0) == 128 and S.pasid_dir_size(7) == 1 << 14
    ec = S.ext_context_entry.encode(p=1, t=4, neste=1, paside=1, slptptr=0x1000, aw=2,
                                    did=9, pts=3, pasidptr=0x2000, pasidstptr=0x3000)
    assert ec == (0x1000 | 1 << 11 | 1 << 10 | 4 << 2 | 1, 9 << 8 | 2, 0x2000 | 3, 0x3000)


def test_encode_rejects_wrong_values():
    with pytest.raises(ValueError, match="pgtt"):
        S.pasid_entry.encode(pgtt=8)
    with pytest.raises(ValueError, match="flptptr"):
        S.pasid_entry.encode(flptptr=0x1001)
    with pytest.raises(ValueError, match="nope"):
        S.pasid_entry.encode(nope=1)
    with pytest.raises(ValueError, match="qwords"):
        S.pasid_entry.decode((0,))


DESCS = [inv.ContextCacheInv("global"), inv.ContextCacheInv("domain", did=7),
         inv.ContextCacheInv("device", did=1, sid=0x1234, fm=3),
         inv.PasidCacheInv("domain", did=3), inv.PasidCacheInv("pasid", did=3, pasid=0xFFFFF),
         inv.PasidCacheInv("global"), inv.IotlbInv("global"), inv.IotlbInv("domain", did=2),
         inv.IotlbInv("page", did=2, addr=0xFFFF_F000, am=9, ih=1, dr=1, dw=1),
         inv.PasidIotlbInv("pasid", did=4, pasid=5),
         inv.PasidIotlbInv("page", did=4, pasid=5, addr=0x20_0000, am=9, ih=1),
         inv.DevTlbInv(0x100, addr=0x4000, size=1, qdep=4),
         inv.PasidDevTlbInv(0x100, 9, addr=0x8000, size=1, glob=1),
         inv.InvWait(1, 0x1000, 0xDEADBEEF, 1)]


@pytest.mark.parametrize("d", DESCS, ids=str)
def test_descriptors_round_trip(d):
    q = d.encode()
    assert len(q) == 4 and q[0] & 0xF == d.TYPE
    assert inv.decode(q) == d
    assert str(d).startswith(d.name)


def test_descriptor_types_and_granularity_bits():
    """Type numbers and G encodings of VT-d §6.5.2 (Linux iommu.h QI_*)."""
    assert [c.TYPE for c in (inv.ContextCacheInv, inv.IotlbInv, inv.DevTlbInv, inv.InvWait,
                             inv.PasidIotlbInv, inv.PasidCacheInv, inv.PasidDevTlbInv)] == \
        [1, 2, 3, 5, 6, 7, 8]
    assert inv.IotlbInv("page").encode()[0] == 2 | 3 << 4
    assert inv.PasidCacheInv("pasid", pasid=1).encode()[0] == 7 | 1 << 4 | 1 << 32
    assert inv.PasidIotlbInv("pasid").encode()[0] == 6 | 2 << 4
    with pytest.raises(ValueError, match="granularity"):
        inv.IotlbInv("pasid")
    with pytest.raises(ValueError, match="did"):
        inv.IotlbInv("domain", did=1 << 16)
    with pytest.raises(ValueError, match="addr"):
        inv.IotlbInv("page", addr=0x1001)
    with pytest.raises(ValueError, match="reserved granularity"):
        inv.decode((2, 0))                        # IOTLB with G=00b
    with pytest.raises(ValueError, match="type"):
        inv.decode((4, 0))                        # interrupt entry cache: not modelled


def test_invalidate_rejects_non_descriptors():
    rig = Rig()
    with pytest.raises(ValueError, match="desc"):
        rig.iommu.invalidate((1, 0, 0, 0))


def test_inv_wait_writes_status():
    rig = Rig()
    status = rig.alloc.alloc()
    rig.iommu.invalidate(inv.InvWait(1, status + 4, 0x1234_5678))
    assert rig.mem.read(status + 4, 4) == (0x1234_5678).to_bytes(4, "little")


# -- garbage ------------------------------------------------------------------

QW = st.integers(0, (1 << 64) - 1)


def garbage_system(ttm, caches=False):
    rig = Rig(ttm=ttm, caches=CacheConfig(enabled=caches))
    if ttm == "legacy":
        return rig
    sl, gpt = rig.guest(frames=16)
    gpt.map(0x1000, 0x2000)
    fl = rig.fl()
    fl.map(0x1000, 0x3000)
    if ttm == "scalable":
        rig.drv.attach(SID, second_root=sl.root)
        rig.drv.bind(SID, 1, first_root=fl.root)
        rig.drv.bind(SID, 2, first_root=gpt.root, nested=True, second_root=sl.root)
    else:
        rig.drv.attach(SID, second_root=sl.root)
        rig.drv.bind(SID, 1, first_root=fl.root)
    return rig


SYSTEMS = {t: garbage_system(t) for t in ("scalable", "legacy", "extended")}
SYSTEMS["scalable-cached"] = garbage_system("scalable", caches=True)


@pytest.mark.parametrize("ttm", list(SYSTEMS))
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(pick=st.integers(0, 10_000), values=st.lists(QW, min_size=1, max_size=8),
       pasid=st.sampled_from([None, 1, 2, 64, 0xFFFFF]), va=st.sampled_from([0x1000, 0, 1 << 63]),
       access=st.sampled_from("rwx"), priv=st.booleans())
def test_garbage_in_any_structure_gives_a_fault_never_an_exception(ttm, pick, values, pasid,
                                                                  va, access, priv):
    """Overwrite qwords of an entry the last walk read (root, context, PASID
    directory, PASID entry or a page-table entry) with arbitrary values."""
    rig = SYSTEMS[ttm]
    iommu = rig.iommu
    ttm_name, ttm = ttm, iommu.ttm
    if ttm == "legacy" and pasid is not None:
        pasid = None
    w = iommu.translate(SID, va, pasid=pasid, access=access, privileged=priv)
    refs = w.refs or [type("R", (), {"address": iommu.root_table + 16 * 3})()]
    target = refs[pick % len(refs)].address & ~7
    saved = [rig.mem.read_u64(target + 8 * i) for i in range(len(values))]
    try:
        for i, v in enumerate(values):
            rig.mem.write_u64(target + 8 * i, v)
        w = iommu.translate(SID, va, pasid=pasid, access=access, privileged=priv)
        if not priv and ttm_name != "scalable-cached":
            # the compiled batch meets the same garbage with the same answer
            pa, c = iommu.translate_many(SID, [va], pasid=pasid, access=access)
            assert (int(pa[0]), int(c[0])) == ((w.pa, 0) if w.ok else (0, w.fault.code))
        if w.ok:
            assert 0 <= w.pa < 1 << 64
        else:
            table = SCALABLE_REASONS if ttm == "scalable" else {**LEGACY_REASONS,
                                                               **SCALABLE_REASONS}
            assert w.fault.code in table
    finally:
        for i, v in enumerate(saved):
            rig.mem.write_u64(target + 8 * i, v)
