"""What an OS or VMM driver does to an SMMUv3: write STEs and CDs, then issue commands.

Modelled on the sequences of IHI 0070 4.3/4.4 (after changing a structure, invalidate what
the SMMU may have cached of it, then CMD_SYNC) as Linux ``arm-smmu-v3`` follows them. Every
method returns the :class:`Ops` it performed: the 64-bit memory writes ``(pa, old, new,
what)`` and the commands, in order. The commands are executed on the SMMU unless the driver
was made with ``invalidate=False`` (to show stale translations); ``ops.commands`` lists
them either way.

Nesting (STE.Config 0b111): the CD table belongs to the guest and lives in its IPA space;
the driver writes the guest's CDs where stage 2 puts them (as a guest kernel writes them
and the VMM forwards its CMD_CFGI_CD), and records the host-physical address written.
"""

from dataclasses import dataclass, field

from ..formats import arm64_s1, arm64_s2
from ..walker import faults as F
from ..walker import reference
from . import commands as C
from .structures import (CD, CONFIGS, CONFIG_NESTED, CONFIG_S1, CONFIG_S2, L1CD, L1STD,
                         S1DSSS, S1FMTS, S1FMT_LINEAR, S1FMT_4K_L2, STE)
from .tables import alloc_table

TG0_OF = {4096: 0, 65536: 1, 16384: 2}
CONFIG_NAMES = tuple(CONFIGS)


@dataclass
class Ops:
    """What a driver call did: ``writes`` as ``(pa, old, new, what)`` and ``commands``
    (also ``invalidations``, the name the VT-d model uses)."""

    writes: list = field(default_factory=list)
    commands: list = field(default_factory=list)

    @property
    def invalidations(self):
        return self.commands

    def __iadd__(self, other):
        self.writes += other.writes
        self.commands += other.commands
        return self


@dataclass
class _Stream:
    config: int
    vmid: int
    cd_table: int = 0
    s1fmt: int = S1FMT_LINEAR
    s1cdmax: int = 0
    s2: object = None               # (root, descriptor) of stage 2, for IPA -> PA
    guest_alloc: object = None
    asids: dict = field(default_factory=dict)     # ssid -> ASID of a bound CD


class Driver:
    """A driver for the SMMU ``iommu``, allocating its tables from ``alloc``."""

    def __init__(self, mem, alloc, iommu, *, invalidate=True):
        self.mem = mem
        self.alloc = alloc
        self.iommu = iommu
        self.invalidate = invalidate
        self.streams = {}
        self._next_asid = 1             # ASID 0 is left unused, as Linux does
        self._next_vmid = 1

    # -- the stream table ----------------------------------------------------------------

    def attach(self, stream_id, *, config="s1", cd_table=None, s1cdmax=None, s1fmt="linear",
               s1dss="ssid0", second_root=None, second_levels=4, second_input_bits=None,
               granule=4096, vmid=None, s2ps=48, s2affd=False, s2r=True, guest_alloc=None):
        """Write the STE of ``stream_id`` (IHI 0070 5.2) and invalidate it.

        ``config``: "abort", "bypass", "s1", "s2" or "nested". Stage 1 ("s1", "nested")
        uses a CD table of ``2**s1cdmax`` CDs (default 8 bits linear, 16 two-level) in
        format ``s1fmt`` ("linear", "2lvl-4k", "2lvl-64k"), allocated here unless
        ``cd_table`` is given; under nesting ``cd_table`` is the guest's (an IPA), or one
        ``guest_alloc()`` (a function returning the IPA of a zeroed guest frame) provides.
        ``s1dss`` ("terminate", "bypass", "ssid0") serves transactions without a PASID.
        Stage 2 ("s2", "nested") walks the tables at ``second_root`` (a PA) with
        ``second_levels`` levels, ``second_input_bits`` of IPA, ``granule``, VMID ``vmid``
        (allocated when None), output size ``s2ps``, S2AFFD ``s2affd`` and S2R ``s2r``.
        """
        if config not in CONFIGS:
            raise ValueError(f"config={config!r} is not allowed; allowed: "
                             + ", ".join(CONFIG_NAMES))
        if s1fmt not in S1FMTS:
            raise ValueError(f"s1fmt={s1fmt!r} is not allowed; allowed: " + ", ".join(S1FMTS))
        if s1dss not in S1DSSS:
            raise ValueError(f"s1dss={s1dss!r} is not allowed; allowed: " + ", ".join(S1DSSS))
        code = CONFIGS[config]
        ops = Ops()
        old = self.streams.get(stream_id)
        fields = {"v": 1, "config": code}
        stream = _Stream(code, 0)
        if code in (CONFIG_S2, CONFIG_NESTED):
            if second_root is None:
                raise ValueError(f"second_root is required with config={config!r}")
            stream.vmid = self._alloc_vmid() if vmid is None else vmid
            if second_input_bits is None:
                second_input_bits = arm64_s2.FORMAT.input_bits_for(second_levels, granule)
            d2 = arm64_s2.FORMAT.descriptor(second_levels, s2ps, granule=granule,
                                            input_bits=second_input_bits, affd=s2affd)
            stream.s2 = (second_root, d2)
            fields.update(s2vmid=stream.vmid, s2t0sz=64 - second_input_bits,
                          s2sl0=arm64_s2.sl0_for(second_levels, granule), s2tg=TG0_OF[granule],
                          s2ps=arm64_s1.PA_SIZES.index(s2ps), s2aa64=1, s2affd=int(s2affd),
                          s2r=int(s2r), s2ir0=1, s2or0=1, s2sh0=3, s2ttb=second_root)
        if code in (CONFIG_S1, CONFIG_NESTED):
            fmt = S1FMTS[s1fmt]
            if s1cdmax is None:
                s1cdmax = 8 if fmt == S1FMT_LINEAR else 16
            if not 0 <= s1cdmax <= self.iommu.ssid_bits:
                raise ValueError(f"s1cdmax={s1cdmax!r} is not allowed; allowed: 0 to "
                                 f"{self.iommu.ssid_bits}")
            stream.s1fmt, stream.s1cdmax, stream.guest_alloc = fmt, s1cdmax, guest_alloc
            if fmt == S1FMT_LINEAR:
                nbytes = CD.size << s1cdmax
            else:
                nbytes = 8 << max(s1cdmax - (6 if fmt == S1FMT_4K_L2 else 10), 0)
            if cd_table is None:
                if code == CONFIG_NESTED:
                    if guest_alloc is None:
                        raise ValueError("nested streams need the guest's CD table: give "
                                         "cd_table (an IPA) or guest_alloc")
                    cd_table = self._guest_table(guest_alloc, nbytes)
                else:
                    cd_table = alloc_table(self.alloc, max(nbytes, 64))
            stream.cd_table = cd_table
            fields.update(s1fmt=fmt, s1contextptr=cd_table, s1cdmax=s1cdmax,
                          s1dss=S1DSSS[s1dss], s1cir=1, s1cor=1, s1csh=3)
        ste_pa = self._ste_address(stream_id, ops)
        self._write_struct(ops, STE, ste_pa, STE.encode(**fields), f"ste {stream_id:#x}",
                           (C.CMD_CFGI_STE(stream_id), C.CMD_SYNC()))
        self._issue(ops, C.CMD_CFGI_STE(stream_id), C.CMD_SYNC())
        if old is not None:
            self._issue_tlb(ops, old)
        self.streams[stream_id] = stream
        return ops

    def detach(self, stream_id, *, to="abort"):
        """Take the stream away: its STE becomes ``to`` ("abort": V=1, Config abort, as
        Linux's blocking domain; "invalid": V=0, so DMA raises C_BAD_STE; "bypass"), then
        invalidate the STE and the stream's TLB entries."""
        if to not in ("abort", "invalid", "bypass"):
            raise ValueError(f"to={to!r} is not allowed; allowed: 'abort', 'invalid', 'bypass'")
        stream = self._stream(stream_id)
        ops = Ops()
        new = STE.encode() if to == "invalid" else STE.encode(v=1, config=CONFIGS[to])
        self._write_struct(ops, STE, self._ste_address(stream_id, ops), new,
                           f"ste {stream_id:#x}")
        self._issue(ops, C.CMD_CFGI_STE(stream_id), C.CMD_SYNC())
        self._issue_tlb(ops, stream)
        del self.streams[stream_id]
        return ops

    def modify_ste(self, stream_id, **fields):
        """Change STE fields (names of :data:`svmkit.smmuv3.structures.STE`), then
        CMD_CFGI_STE and the stream's TLB invalidation."""
        stream = self._stream(stream_id)
        ops = Ops()
        pa = self._ste_address(stream_id, ops)
        qw = STE.update(STE.read(self.mem, pa), **fields)
        self._write_struct(ops, STE, pa, qw, f"ste {stream_id:#x}",
                           (C.CMD_CFGI_STE(stream_id), C.CMD_SYNC()))
        self._issue(ops, C.CMD_CFGI_STE(stream_id), C.CMD_SYNC())
        self._issue_tlb(ops, stream)
        return ops

    # -- context descriptors -------------------------------------------------------------

    def bind(self, stream_id, pasid, *, first_root, first_levels=4, nested=False,
             second_root=None, second_levels=4, asid=None, input_bits=None, granule=4096,
             ips=48, affd=False, had=False, tbi=False, record=True, **attach):
        """Write CD ``pasid`` (the SubstreamID; None for CD 0, which serves transactions
        without a PASID under S1DSS "ssid0") of ``stream_id``: stage 1 tables at
        ``first_root`` (an IPA when the stream is nested) with ``first_levels`` levels,
        ``input_bits`` (64 - T0SZ), ``granule`` (TG0), ``ips``, ASID ``asid`` (allocated
        when None), AFFD, HAD0, TBI0 and R (``record``); TTB1 is disabled (EPD1).
        A stream that is not attached yet is attached first, "nested" with
        ``second_root``/``second_levels`` when ``nested``, else "s1" (``attach`` keywords
        pass through). Then CMD_CFGI_CD, and CMD_TLBI_NH_ASID for a CD that was valid."""
        ops = Ops()
        stream = self.streams.get(stream_id)
        if stream is None or stream.config not in (CONFIG_S1, CONFIG_NESTED):
            if nested and second_root is None and stream is not None and stream.s2:
                # a stage 2 stream becoming nested keeps its stage 2 and VMID
                second_root = stream.s2[0]
                attach.setdefault("vmid", stream.vmid)
            ops += self.attach(stream_id, config="nested" if nested else "s1",
                               second_root=second_root, second_levels=second_levels,
                               granule=granule, **attach)
            stream = self.streams[stream_id]
        elif bool(nested) != (stream.config == CONFIG_NESTED):
            raise ValueError(f"nested={nested!r} does not match stream {stream_id:#x}, "
                             f"attached {'nested' if stream.config == CONFIG_NESTED else 's1'}")
        ssid = 0 if pasid is None else pasid
        if ssid >> stream.s1cdmax:
            raise ValueError(f"pasid={pasid!r} is not allowed; allowed: 0 to "
                             f"{(1 << stream.s1cdmax) - 1} (STE.S1CDMax={stream.s1cdmax})")
        if input_bits is None:
            input_bits = arm64_s1.FORMAT.input_bits_for(first_levels, granule)
        arm64_s1.FORMAT.check_input(first_levels, input_bits, granule)
        if asid is None:
            asid = self._next_asid
            self._next_asid += 1
        cd = CD.encode(v=1, aa64=1, r=int(record), a=1, asid=asid, t0sz=64 - input_bits,
                       tg0=TG0_OF[granule], ir0=1, or0=1, sh0=3, epd1=1, t1sz=64 - input_bits,
                       tg1=2, ips=arm64_s1.PA_SIZES.index(ips), affd=int(affd),
                       had0=int(had), tbi=int(tbi), ttb0=first_root, mair=0xFF)
        pa, ipa = self._cd_address(stream_id, stream, ssid, ops)
        old = CD.decode(CD.read(self.mem, pa))
        self._write_struct(ops, CD, pa, cd, self._cd_what(stream_id, ssid, ipa),
                           (C.CMD_CFGI_CD(stream_id, ssid), C.CMD_SYNC()))
        self._issue(ops, C.CMD_CFGI_CD(stream_id, ssid), C.CMD_SYNC())
        if old["v"]:
            self._issue(ops, C.CMD_TLBI_NH_ASID(old["asid"], stream.vmid), C.CMD_SYNC())
        stream.asids[ssid] = asid
        return ops

    def unbind(self, stream_id, pasid):
        """Invalidate CD ``pasid`` (V=0), then CMD_CFGI_CD and CMD_TLBI_NH_ASID."""
        stream = self._stream(stream_id)
        ssid = 0 if pasid is None else pasid
        ops = Ops()
        pa, ipa = self._cd_address(stream_id, stream, ssid, ops, create=False)
        if pa is None:
            return ops
        old = CD.read(self.mem, pa)
        self._write_struct(ops, CD, pa, (0,) + old[1:], self._cd_what(stream_id, ssid, ipa))
        self._issue(ops, C.CMD_CFGI_CD(stream_id, ssid), C.CMD_SYNC())
        if CD.decode(old)["v"]:
            self._issue(ops, C.CMD_TLBI_NH_ASID(CD.decode(old)["asid"], stream.vmid),
                        C.CMD_SYNC())
        stream.asids.pop(ssid, None)
        return ops

    def modify(self, stream_id, pasid, **fields):
        """Change fields of CD ``pasid`` (names of :data:`svmkit.smmuv3.structures.CD`;
        ``first_root`` stands for ``ttb0``), then CMD_CFGI_CD and CMD_TLBI_NH_ASID of the
        old ASID."""
        stream = self._stream(stream_id)
        ssid = 0 if pasid is None else pasid
        if "first_root" in fields:
            fields["ttb0"] = fields.pop("first_root")
        ops = Ops()
        pa, ipa = self._cd_address(stream_id, stream, ssid, ops, create=False)
        if pa is None:
            raise ValueError(f"pasid={pasid!r} has no CD table entry on stream {stream_id:#x}")
        old = CD.read(self.mem, pa)
        new = CD.update(old, **fields)
        self._write_struct(ops, CD, pa, new, self._cd_what(stream_id, ssid, ipa),
                           (C.CMD_CFGI_CD(stream_id, ssid), C.CMD_SYNC()))
        self._issue(ops, C.CMD_CFGI_CD(stream_id, ssid), C.CMD_SYNC(),
                    C.CMD_TLBI_NH_ASID(CD.decode(old)["asid"], stream.vmid), C.CMD_SYNC())
        stream.asids[ssid] = CD.decode(new)["asid"]
        return ops

    def flush(self, stream_id, pasid=None, address=None, *, stage=1):
        """TLB invalidation after a page-table change (IHI 0070 4.4). ``stage`` 1: the
        stage 1 tables of CD ``pasid`` changed: CMD_TLBI_NH_VA for ``address``, else
        CMD_TLBI_NH_ASID. ``stage`` 2: the stage 2 tables changed: CMD_TLBI_S2_IPA for
        ``address`` (an IPA), else CMD_TLBI_S12_VMALL; a nested stream also needs
        CMD_TLBI_NH_ALL, since its TLB entries combine both stages."""
        stream = self._stream(stream_id)
        ops = Ops()
        if stage == 1:
            asid = stream.asids.get(0 if pasid is None else pasid)
            if asid is None:
                raise ValueError(f"pasid={pasid!r} is not bound on stream {stream_id:#x}")
            cmd = C.CMD_TLBI_NH_ASID(asid, stream.vmid) if address is None else \
                C.CMD_TLBI_NH_VA(asid, address, stream.vmid)
            self._issue(ops, cmd, C.CMD_SYNC())
        elif stage == 2:
            if stream.s2 is None:
                raise ValueError(f"stage=2 but stream {stream_id:#x} has no stage 2")
            cmd = C.CMD_TLBI_S12_VMALL(stream.vmid) if address is None else \
                C.CMD_TLBI_S2_IPA(address, stream.vmid)
            self._issue(ops, cmd, C.CMD_SYNC())
            if stream.config == CONFIG_NESTED and address is not None:
                self._issue(ops, C.CMD_TLBI_NH_ALL(stream.vmid), C.CMD_SYNC())
        else:
            raise ValueError(f"stage={stage!r} is not allowed; allowed: 1, 2")
        return ops

    # -- helpers -------------------------------------------------------------------------

    def _stream(self, stream_id):
        stream = self.streams.get(stream_id)
        if stream is None:
            raise ValueError(f"stream_id={stream_id!r} is not attached; attached: "
                             + (", ".join(f"{s:#x}" for s in self.streams) or "none"))
        return stream

    def _alloc_vmid(self):
        vmid = self._next_vmid
        self._next_vmid += 1
        return vmid

    def _issue_tlb(self, ops, stream):
        """Drop every TLB entry the stream may have left, then CMD_SYNC."""
        if stream.s2 is not None:
            cmds = [C.CMD_TLBI_S12_VMALL(stream.vmid)]
        else:
            cmds = [C.CMD_TLBI_NH_ASID(a, stream.vmid) for a in sorted(set(stream.asids.values()))]
        if cmds:
            self._issue(ops, *cmds, C.CMD_SYNC())

    def _issue(self, ops, *cmds):
        ops.commands.extend(cmds)
        if self.invalidate:
            for cmd in cmds:
                self.iommu.invalidate(cmd)

    def _write(self, ops, pa, new, what):
        old = self.mem.read_u64(pa)
        self.mem.write_u64(pa, new)
        ops.writes.append((pa, old, new, what))

    def _write_struct(self, ops, struct, pa, qwords, what, sync=()):
        """Write the doublewords that change so that the SMMU never reads half an entry as
        valid (IHI 0070 3.21, "Structure access rules and update procedures"): one changed
        doubleword is one single-copy-atomic write; a new entry gets dwords 1..7 first and
        dword 0 (with V) last; a valid entry that changes in several doublewords is broken
        first (V=0, then the ``sync`` commands: its invalidation and CMD_SYNC), then
        remade."""
        old = struct.read(self.mem, pa)
        changed = [i for i in range(struct.dwords) if qwords[i] != old[i]]
        v = _valid_bit(struct)
        if len(changed) > 1 and old[0] & v and qwords[0] & v:
            self._write(ops, pa, old[0] & ~v, f"{what} dword 0 (V=0: break before make)")
            self._issue(ops, *sync)
            old = (old[0] & ~v,) + old[1:]
        order = list(range(1, struct.dwords)) + [0] if qwords[0] & v \
            else list(range(struct.dwords))
        for i in order:
            if qwords[i] != old[i]:
                self._write(ops, pa + 8 * i, qwords[i], f"{what} dword {i}")

    def _ste_address(self, sid, ops):
        """PA of the STE of ``sid``; for a two-level table, the level 2 table is made (and
        its L1STD written) when missing."""
        smmu = self.iommu
        if sid >> smmu.log2size:
            raise ValueError(f"stream_id={sid!r} is not allowed; allowed: 0 to "
                             f"{(1 << smmu.log2size) - 1}")
        if smmu.strtab_fmt == "linear":
            return smmu.strtab_base + sid * STE.size
        l1 = smmu.strtab_base + (sid >> smmu.split) * 8
        desc = L1STD.decode((self.mem.read_u64(l1),))
        if desc["span"] == 0:
            l2 = alloc_table(self.alloc, STE.size << smmu.split)
            self._write(ops, l1, L1STD.encode(span=smmu.split + 1, l2ptr=l2)[0],
                        f"l1-std {sid >> smmu.split:#x}")
            self._issue(ops, C.CMD_CFGI_STE(sid, leaf=False), C.CMD_SYNC())
            desc = {"l2ptr": l2}
        return desc["l2ptr"] + (sid & ((1 << smmu.split) - 1)) * STE.size

    def _cd_address(self, sid, stream, ssid, ops, create=True):
        """``(pa, ipa)`` of CD ``ssid``: ``ipa`` is its address in the CD table's space (an
        IPA when nested, else equal to ``pa``). Makes a missing level 2 CD table when
        ``create``, else returns ``(None, None)``."""
        table = stream.cd_table
        if stream.s1fmt == S1FMT_LINEAR:
            ipa = table + ssid * CD.size
            return self._to_pa(stream, ipa), ipa
        low = 6 if stream.s1fmt == S1FMT_4K_L2 else 10
        l1_ipa = table + (ssid >> low) * 8
        l1_pa = self._to_pa(stream, l1_ipa)
        desc = L1CD.decode((self.mem.read_u64(l1_pa),))
        if not desc["v"]:
            if not create:
                return None, None
            nbytes = CD.size << low
            if stream.config == CONFIG_NESTED:
                if stream.guest_alloc is None:
                    raise ValueError("a nested two-level CD table needs guest_alloc to grow")
                l2 = self._guest_table(stream.guest_alloc, nbytes)
            else:
                l2 = alloc_table(self.alloc, nbytes)
            self._write(ops, l1_pa, L1CD.encode(v=1, l2ptr=l2)[0], f"l1-cd {ssid >> low:#x}"
                        + (f" (ipa {l1_ipa:#x})" if l1_pa != l1_ipa else ""))
            self._issue(ops, C.CMD_CFGI_CD(sid, ssid, leaf=False), C.CMD_SYNC())
            desc = {"l2ptr": l2}
        ipa = desc["l2ptr"] + (ssid & ((1 << low) - 1)) * CD.size
        return self._to_pa(stream, ipa), ipa

    def _cd_what(self, sid, ssid, ipa):
        return f"cd {sid:#x}:{ssid:#x}" + ("" if ipa is None else f" (at {ipa:#x})")

    def _to_pa(self, stream, addr):
        """Where ``addr`` of the CD table's space sits in host memory: through stage 2 for
        a nested stream (as the VMM knows its guest's memory), else itself."""
        if stream.config != CONFIG_NESTED:
            return addr
        root, d2 = stream.s2
        r = reference.stage_walk(self.mem, addr, root, d2, F.R, False, True, [], F.SECOND, -1)
        if r[0]:
            raise ValueError(f"the guest's CD table address {addr:#x} is not mapped by "
                             f"stage 2 ({F.REASONS[r[0]]})")
        return r[4]

    def _guest_table(self, guest_alloc, nbytes):
        """A guest table of ``nbytes`` from ``guest_alloc`` (one 4 KiB frame per call; a
        larger table takes consecutive frames, which must be consecutive IPAs)."""
        first = guest_alloc()
        for i in range(1, max(nbytes // 4096, 1)):
            if guest_alloc() != first + 4096 * i:
                raise ValueError("guest_alloc must hand out consecutive IPAs for a table "
                                 "larger than 4 KiB")
        return first


def _valid_bit(struct):
    return 1 << struct.fields["v"].lo
