"""The numba walker and the reference walker agree on everything: result, fault, every
reference in order, and the accessed/dirty flags they leave in memory.

Two kinds of memory: well-formed tables with random mappings, rights and page sizes, and
garbage: frames filled with entries whose addresses point back into the same few frames
(so walks go deep, share tables between stages and run in cycles), random flag bits and,
now and then, random high bits; some frames lie beyond installed memory.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

import svmkit
from svmkit import Memory
from svmkit.walker import jit, reference

FRAMES = 8
BASE = 0x7FF0_0000            # the last pool frames straddle the end of installed memory
SIZE = BASE + 6 * 4096


def garbage_memory(seed):
    rng = np.random.default_rng(seed)
    mem = Memory(size=SIZE)
    pool = BASE + 4096 * np.arange(FRAMES, dtype=np.int64)
    weights = np.array([1.0] * 6 + [0.15, 0.15])    # rarely point beyond installed RAM
    for frame in pool[:6]:
        n = 512
        entry = pool[rng.choice(FRAMES, n, p=weights / weights.sum())]
        entry |= rng.integers(0, 1 << 12, n) & 0x77F          # flags, but PS and SNP ...
        entry |= np.where(rng.random(n) < 0.15, 0x80, 0)     # ... only now and then
        entry |= np.where(rng.random(n) < 0.05, 0x800, 0)
        entry |= np.where(rng.random(n) < 0.9, 0x7, 0)       # mostly present
        high = rng.integers(0, 1 << 12, n).astype(np.int64) << 52
        entry |= np.where(rng.random(n) < 0.04, high, 0)
        entry |= np.where(rng.random(n) < 0.02, np.int64(1) << 40, 0)
        mem.write(int(frame), entry.astype("<i8").tobytes())
    return mem, [int(f) for f in pool]


def both(mem_a, mem_b, va, cfg):
    raw_a = []
    ra = reference.walk(mem_a, va, cfg.root, cfg.d1, cfg.second_root, cfg.d2, cfg.nested,
                        cfg.access, cfg.user, cfg.wp, raw_a)
    refs = np.zeros((jit.MAX_REFS, jit.REF_COLUMNS), dtype=np.int64)
    keys, slots, frames, size = mem_b.arrays()
    va64 = np.int64(va - (1 << 64) if va >> 63 else va)
    rb = jit.walk_nb(keys, slots, frames, size, va64, cfg.root, cfg.d1, cfg.second_root,
                     cfg.d2, cfg.nested, cfg.access, cfg.user, cfg.wp, refs, 0)
    raw_b = [tuple(int(x) for x in row) for row in refs[:rb[6]]]
    ra = tuple(int(x) for x in ra)
    rb = tuple(int(x) for x in rb[:6]) + (int(rb[7]),)
    # addresses compare as 64-bit patterns
    norm = lambda r: (r[0], r[1], r[2], r[3] & (2**64 - 1), r[4], r[5], r[6])
    return norm(ra), norm(rb), raw_a, raw_b


configs = st.fixed_dictionaries({
    "levels": st.sampled_from([4, 5]),
    "second_levels": st.sampled_from([3, 4, 5]),
    "nested": st.booleans(),
    "access": st.sampled_from("rwx"),
    "user": st.booleans(),
    "wp": st.booleans(),
    "second_ad": st.booleans(),
    "phys_bits": st.sampled_from([39, 46, 52]),
    "first_fmt": st.sampled_from(["x86_64", "x86_64", "vtd_sl"]),
})
addresses = st.one_of(
    st.integers(0, (1 << 64) - 1),
    st.integers(0, (1 << 47) - 1),
    st.integers(0, (1 << 47) - 1).map(lambda v: v | 0xFFFF_8000_0000_0000),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), c=configs, root=st.integers(0, FRAMES - 1),
       second_root=st.integers(0, FRAMES - 1), vas=st.lists(addresses, min_size=1, max_size=6))
def test_engines_agree_on_garbage(seed, c, root, second_root, vas):
    mem_a, pool = garbage_memory(seed)
    mem_b, _ = garbage_memory(seed)
    levels = c["levels"] if c["first_fmt"] == "x86_64" else c["second_levels"]
    cfg = svmkit.walks.configure(
        root=pool[root], fmt=c["first_fmt"], levels=levels, access=c["access"],
        user=c["user"], phys_bits=c["phys_bits"],
        second_root=pool[second_root] if c["nested"] else None,
        second_levels=c["second_levels"], wp=c["wp"], second_ad=c["second_ad"])
    for va in vas:
        ra, rb, refs_a, refs_b = both(mem_a, mem_b, va, cfg)
        assert ra == rb
        assert refs_a == refs_b
    for frame in pool:
        if frame + 4096 <= SIZE:
            assert mem_a.read(frame, 4096) == mem_b.read(frame, 4096)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12),
       sizes=st.lists(st.sampled_from([4096, 2 << 20, 1 << 30]), min_size=12, max_size=12),
       access=st.sampled_from("rwx"), user=st.booleans())
def test_engines_agree_on_random_mappings_and_find_them(seed, n, sizes, access, user):
    from walkcases import Nested

    def build():
        # built twice, identically: each engine walks its own copy, since walks set A/D
        rng = np.random.default_rng(seed)
        sys = Nested(guest_frames=128, seed=seed)
        expect = {}
        for i in range(n):
            size = sizes[i]
            va = int(rng.integers(0, 1 << 47)) & ~(size - 1)
            gpa = int(rng.integers(0, 128)) * 4096 & ~(size - 1) if size == 4096 else 0
            perms = dict(write=bool(rng.integers(2)), user=bool(rng.integers(2)),
                         xd=bool(rng.integers(2)))
            try:
                sys.gpt.map(va, gpa, size, **perms)
            except ValueError:
                continue                             # collides with a larger page: skip
            expect[va] = (gpa, size, perms, va + int(rng.integers(0, size)) // 8 * 8)
        return sys, expect

    sys_a, expect = build()
    sys_b, _ = build()
    kw = sys_a.keywords(access=access, user=user)
    for va, (gpa, size, perms, va_off) in expect.items():
        a = svmkit.walk(sys_a.mem, va_off, engine="reference", **kw)
        b = svmkit.walk(sys_b.mem, va_off, engine="jit", **kw)
        assert (a.ok, a.pa, a.page_size, a.fault, a.refs) == \
            (b.ok, b.pa, b.page_size, b.fault, b.refs)
        allowed = (access != "w" or perms["write"]) and (not user or perms["user"]) \
            and (access != "x" or not perms["xd"])
        gpa_off = gpa + (va_off - va)
        if a.ok:
            assert allowed and a.gpa == gpa_off and a.pa == sys_a.host(gpa_off)
        elif a.fault.stage == "first":
            assert a.fault.reason == "permission" and not allowed
        else:                                        # the GPA lies outside guest RAM
            assert gpa_off >= 128 * 4096 and a.fault.address == gpa_off
    for frame in sys_a.mem.frames():
        assert sys_a.mem.read(frame, 4096) == sys_b.mem.read(frame, 4096)


# translate(specialize=True) compiles a walker per configuration (about a minute each, cold),
# so these tests use two: nested with every flag update and the 0x77 probe in play, and a
# one-stage 5-level walk.
SPECIALIZED = [
    dict(fmt="x86_64", levels=4, second_levels=4, nested=True, access="w", user=True,
         wp=True, second_ad=True),
    dict(fmt="x86_64", levels=5, second_levels=4, nested=False, access="x", user=False,
         wp=False, second_ad=False),
]


def specialized_keywords(which, root, second_root):
    kw = dict(SPECIALIZED[which])
    nested = kw.pop("nested")
    return dict(kw, root=root, second_root=second_root if nested else None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), which=st.sampled_from(range(len(SPECIALIZED))),
       root=st.integers(0, FRAMES - 1), second_root=st.integers(0, FRAMES - 1),
       vas=st.lists(addresses, min_size=1, max_size=30))
def test_specialized_walker_agrees_on_garbage(seed, which, root, second_root, vas):
    mem_a, pool = garbage_memory(seed)
    mem_b, _ = garbage_memory(seed)
    kw = specialized_keywords(which, pool[root], pool[second_root])
    vas = np.array(vas, dtype=np.uint64)
    pa_a, fault_a = svmkit.translate(mem_a, vas, **kw)
    pa_b, fault_b = svmkit.translate(mem_b, vas, specialize=True, **kw)
    assert fault_a.tolist() == fault_b.tolist()
    assert pa_a.tolist() == pa_b.tolist()
    for frame in pool:
        if frame + 4096 <= SIZE:
            assert mem_a.read(frame, 4096) == mem_b.read(frame, 4096)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40))
def test_specialized_walker_finds_mappings(seed, n):
    from walkcases import Nested

    rng = np.random.default_rng(seed)
    sys = Nested(guest_frames=128, seed=seed)
    expect = {}
    for i in range(n):
        va = int(rng.integers(0, 1 << 35)) << 12
        if va in expect:
            continue
        gpa = int(rng.integers(0, 128)) * 4096
        writable, user = bool(rng.integers(2)), bool(rng.integers(2))
        sys.gpt.map(va, gpa, 4096, write=writable, user=user)
        expect[va | 8 * i] = (gpa | 8 * i, writable and user)
    vas = np.array(list(expect), dtype=np.uint64)
    kw = specialized_keywords(0, sys.gpt.root, sys.sl.root)   # Nested's levels: 4 and 4
    pa, fault = svmkit.translate(sys.mem, vas, specialize=True, **kw)
    for (gpa, allowed), p, f in zip(expect.values(), pa.tolist(), fault.tolist()):
        if allowed:
            assert f == 0 and p == sys.host(gpa)
        else:
            assert svmkit.fault_name(f) == "first-stage permission" and p == 0
    again = svmkit.translate(sys.mem, vas, **kw)     # the generic walker, flags now set
    assert again[0].tolist() == pa.tolist() and again[1].tolist() == fault.tolist()


def test_specialized_walkers_are_made_once_per_configuration():
    from walkcases import Nested

    sys = Nested()

    def descriptors(access):
        c = svmkit.walks.configure(**sys.keywords(access=access))
        return jit.batch_descriptors(c.d1, c.d2, c.access, c.user, c.wp)

    # made, not compiled: numba compiles a walker at its first call
    assert jit.specialized(*descriptors("r"), True) is jit.specialized(*descriptors("r"), True)
    assert jit.specialized(*descriptors("r"), True) is not \
        jit.specialized(*descriptors("w"), True)
    assert jit.specialized(*descriptors("r"), True) is not \
        jit.specialized(*descriptors("r"), False)
