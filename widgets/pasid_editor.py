"""The PASID table editor (Intel VT-d scalable mode, VT-d spec sec. 9.6 and 6.5).

A device's PASID-table entries as a table; edit a field (PGTT, FLPTR, SLPTPTR, AW, DID
...), bind or unbind a process; every change is written by the model's ``Driver`` built
with ``invalidate=False``, so the invalidations it *would* issue are listed and nothing
is flushed until a button issues a descriptor. The caches are shown with stale entries
marked (an entry is stale when the tables in memory now say something else), and a DMA
issued after a change says whether it used a stale translation.
"""

from __future__ import annotations

from html import escape

import ipywidgets as W

from ._common import Base, guarded, hx, message_html, parse_address

#: The fields an instructor edits, as the Driver names them (VT-d sec. 9.6).
FIELDS = ["pgtt", "flptptr", "slptptr", "did", "aw", "fpd", "sre", "wpe", "p"]
ADDRESS_FIELDS = {"flptptr", "slptptr"}


def _table(headers, rows, row_class=None) -> str:
    out = ["<table class='svmkit-fields'><tr>"]
    out += [f"<th>{escape(h)}</th>" for h in headers]
    out.append("</tr>")
    for i, r in enumerate(rows):
        cls = row_class(i) if row_class else ""
        out.append(f"<tr class='{cls}'>" + "".join(f"<td>{escape(str(c))}</td>" for c in r)
                   + "</tr>")
    out.append("</table>")
    return "".join(out)


def _who(pasid):
    return "no PASID" if pasid is None else f"PASID {pasid}"


class PasidTableEditor(Base):
    """Edit a device's PASID table and watch the caches. ``scenario`` is the name of an
    example scenario (a VT-d one), a :class:`svmkit.scenario.Scenario`, or ``None`` for
    "nested-vtd"."""

    def __init__(self, scenario="nested-vtd"):
        from svmkit import scenario as SC
        from svmkit.vtd import CacheConfig, Iommu
        from svmkit.vtd import invalidation as inv
        from svmkit.vtd import structures as VS
        self._inv, self._VS = inv, VS
        s = SC.load(scenario) if isinstance(scenario, str) else scenario
        if not s.model.startswith("vtd"):
            raise ValueError(f"scenario: the PASID table editor models VT-d; "
                             f"{s.name!r} uses {s.model!r}")
        self.scenario = s
        self.built = s.build(invalidate=False)
        self.iommu = self.built.iommu
        self.driver = self.built.adapter.driver
        # What memory says, with no cache in the way: the reference for "stale".
        io = self.iommu
        self.truth = Iommu(io.mem, root_table=io.root_table, ttm=io.ttm, haw=io.haw,
                           pasid_width=io.pasid_width, caches=CacheConfig(enabled=False))
        self.entries = {}           # (rid, pasid) -> entry HPA, every entry ever seen
        self.rid_pasid = {}         # rid -> the PASID its requests without PASID use
        # (rid, pasid) -> the DID the entry had when last present: an unbind clears the
        # entry, but the cached translations stay tagged with the old DID.
        self.last_did = {}
        self.pending = []           # descriptors the driver listed and nobody issued yet
        self.devices = {(f"{d.bdf} ({d.name})" if d.name else d.bdf): d.rid
                        for d in s.devices}
        self.device = W.Dropdown(options=list(self.devices), description="Device",
                                 layout=W.Layout(width="340px"))
        self.table = W.HTML()
        self.table.add_class("svmkit-pasid-table")
        self.pasid = W.Dropdown(description="PASID", layout=W.Layout(width="200px"))
        self.field = W.Dropdown(options=FIELDS, value="pgtt", description="Field",
                                layout=W.Layout(width="220px"))
        self.value = W.Text(description="Value", placeholder="first / 0x1000 / 5",
                            layout=W.Layout(width="300px"))
        self.write_b = W.Button(description="Write entry", button_style="warning",
                                icon="pencil")
        self.process = W.Dropdown(options=[p.qname for p in s.processes()],
                                  description="Process", layout=W.Layout(width="300px"))
        self.new_pasid = W.BoundedIntText(value=7, min=1, max=(1 << io.pasid_width) - 1,
                                          description="at PASID",
                                          layout=W.Layout(width="200px"))
        self.bind_b = W.Button(description="Bind", button_style="success", icon="link")
        self.unbind_b = W.Button(description="Unbind PASID", button_style="danger",
                                 icon="unlink")
        self.inv_buttons = {
            "pc_inv_dsc (PASID)": self._pc_pasid,
            "p_iotlb_inv_dsc (PASID)": self._piotlb_pasid,
            "iotlb_inv_dsc (domain)": self._iotlb_domain,
            "cc_inv_dsc (device)": self._cc_device,
            "everything the driver listed": self._issue_pending,
        }
        inv_row = []
        for label, fn in self.inv_buttons.items():
            b = W.Button(description=label, layout=W.Layout(width="auto"))
            b.on_click(lambda _b, fn=fn: self._run(fn))
            inv_row.append(b)
        self.ops = W.HTML()
        self.address = W.Text(description="DMA to", layout=W.Layout(width="320px"))
        self.dma_b = W.Button(description="Issue DMA", button_style="primary", icon="bolt")
        self.dma = W.HTML()
        self.dma.add_class("svmkit-dma")
        self.caches = W.HTML()
        self.caches.add_class("svmkit-caches")
        super().__init__([
            self.device, W.HTML("<b>PASID table</b>"), self.table,
            W.HBox([self.pasid, self.field, self.value, self.write_b]),
            W.HBox([self.process, self.new_pasid, self.bind_b, self.unbind_b]),
            W.HTML("<b>Invalidation descriptors</b> (VT-d 6.5.2)"), W.HBox(inv_row),
            self.ops, W.HBox([self.address, self.dma_b]), self.dma,
            W.HTML("<b>Caches</b> (stale entries marked)"), self.caches])
        self.device.observe(lambda ch: self._run(self.refresh), "value")
        self.write_b.on_click(lambda b: self._run(self._write))
        self.bind_b.on_click(lambda b: self._run(self._bind))
        self.unbind_b.on_click(lambda b: self._run(self._unbind))
        self.dma_b.on_click(lambda b: self._run(self.issue_dma))
        maps = [m.va for p in s.processes() for m in p.maps]
        self.address.value = hx(maps[0]) if maps else "0x400000"
        self._run(self.refresh)

    # -- reading ---------------------------------------------------------------------------

    @property
    def rid(self):
        return self.devices[self.device.value]

    def pasid_rows(self):
        """The device's PASID entries as dicts of fields (from memory)."""
        for c in self.built.adapter.contexts():
            if c.pasid is not None:
                self.entries[(c.rid, c.pasid)] = c.entry
                if c.rid_pasid:
                    self.rid_pasid[c.rid] = c.pasid
        st = self._VS.pasid_entry
        rows = []
        for (rid, pasid), pa in sorted(self.entries.items()):
            if rid != self.rid:
                continue
            q = tuple(self.iommu.mem.read_u64(pa + 8 * i) for i in range(st.qwords))
            f = st.decode(q)
            f["pasid"], f["entry"] = pasid, pa
            if f["p"]:
                self.last_did[(rid, pasid)] = f["did"]
            rows.append(f)
        return rows

    def stale_pasid_cache(self):
        """PASID-cache entries whose decode no longer matches memory: (key, cached, now)."""
        out = []
        for key, pe in self.iommu.pasid_cache.items():
            cfg, _err = self.truth.configure(key[0], pasid=key[1])
            now = None if cfg is None else (cfg.pgtt, cfg.first_root, cfg.second_root, cfg.did)
            was = (pe.pgtt, pe.first_root, pe.second_root, pe.did)
            out.append((key, pe, was != now))
        return out

    def stale_iotlb(self):
        """IOTLB entries with whether memory still gives the same translation."""
        out = []
        owners = {}
        for c in self.built.adapter.contexts():
            cfg, _ = self.truth.configure(c.rid, pasid=c.pasid)
            if cfg is not None:
                owners[(cfg.did, cfg.pasid)] = c.rid
        for e in self.iommu.iotlb.entries():
            rid = owners.get((e["did"], e["pasid"]))
            stale = True
            if rid is not None:
                w = self.truth.translate(rid, e["address"], pasid=e["pasid"])
                stale = not (w.ok and w.pa - w.pa % e["page_size"] == e["pa"])
            out.append((e, stale))
        return out

    # -- actions ---------------------------------------------------------------------------

    def _run(self, fn):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - shown, never raised into the page
            from ._common import describe_error
            self.show_message(describe_error(exc), "error")
            return
        self._render()

    def refresh(self):
        self.show_message()

    def _show_ops(self, label, ops):
        writes, invs = list(ops.writes), list(ops.invalidations)
        self.pending += invs
        lines = [f"<b>{escape(label)}</b>: {len(writes)} write(s)"]
        for pa, old, new, what in writes:
            lines.append(f"<div><code>{pa:#x}: {old:#018x} -> {new:#018x}</code> "
                         f"{escape(what)}</div>")
        if invs:
            lines.append("<div>The driver would now issue (not yet issued): "
                         + ", ".join(f"<code>{escape(str(d))}</code>" for d in invs) + "</div>")
        self.ops.value = "".join(lines)
        self.show_message()

    def _parse_value(self):
        text = self.value.value.strip()
        if self.field.value == "pgtt" and text in self._VS.PGTT:
            return text
        if self.field.value in ADDRESS_FIELDS:
            return parse_address(text, bits=52, argument=self.field.value)
        try:
            return int(text, 0)
        except ValueError:
            raise ValueError(f"{self.field.value}: {text!r} is not a number "
                             "(pgtt also takes first, second, nested, pass-through)") from None

    def modify(self, pasid, **fields):
        """Write fields of ``pasid``'s entry (the Driver's ``modify``)."""
        ops = self.driver.modify(self.rid, pasid, **fields)
        self._show_ops(f"modify PASID {pasid}: {fields}", ops)
        self._render()
        return ops

    def _write(self):
        if self.pasid.value is None:
            raise ValueError("PASID: no PASID entry on this device; bind one first")
        self.modify(self.pasid.value, **{self.field.value: self._parse_value()})

    def bind(self, process, pasid):
        """Bind ``process`` (owner/name) to this device at ``pasid``."""
        from svmkit.scenario import Step
        label, writes, invs = self.built.apply(
            Step("bind", {"process": process, "device": self.scenario_device(), "pasid": pasid}))

        class _Ops:   # the scenario log's (writes, invalidations) in the Driver's shape
            pass
        o = _Ops()
        o.writes, o.invalidations = writes, invs
        self._show_ops(label, o)
        self._render()

    def unbind(self, pasid):
        """Unbind ``pasid`` from this device (the Driver's ``unbind``)."""
        ops = self.driver.unbind(self.rid, pasid)
        self._show_ops(f"unbind PASID {pasid}", ops)
        self._render()
        return ops

    def scenario_device(self):
        return next(d.bdf for d in self.scenario.devices if d.rid == self.rid)

    def _bind(self):
        self.bind(self.process.value, int(self.new_pasid.value))

    def _unbind(self):
        if self.pasid.value is None:
            raise ValueError("PASID: no PASID entry on this device")
        self.unbind(self.pasid.value)

    def invalidate(self, desc):
        """Issue one invalidation descriptor to the IOMMU."""
        self.iommu.invalidate(desc)
        self.pending = [d for d in self.pending if d != desc]
        self.ops.value += f"<div>issued <code>{escape(str(desc))}</code></div>"
        self._render()

    def _current(self):
        rows = {r["pasid"]: r for r in self.pasid_rows()}
        r = rows.get(self.pasid.value)
        if r is None:
            raise ValueError("PASID: choose a PASID entry first")
        if not r["p"]:
            r = dict(r, did=self.last_did.get((self.rid, r["pasid"]), r["did"]))
        return r

    def _pc_pasid(self):
        r = self._current()
        self.invalidate(self._inv.PasidCacheInv("pasid", did=r["did"], pasid=r["pasid"]))

    def _piotlb_pasid(self):
        r = self._current()
        self.invalidate(self._inv.PasidIotlbInv("pasid", did=r["did"], pasid=r["pasid"]))

    def _iotlb_domain(self):
        self.invalidate(self._inv.IotlbInv("domain", did=self._current()["did"]))

    def _cc_device(self):
        self.invalidate(self._inv.ContextCacheInv("device", did=self._current()["did"],
                                                  sid=self.rid))

    def _issue_pending(self):
        if not self.pending:
            self.show_message("The driver has listed no invalidation since the last one.")
            return
        for d in list(self.pending):
            self.invalidate(d)

    def issue_dma(self, address=None, access="r"):
        """A DMA from the device at ``address`` with the chosen PASID: the IOMMU's answer
        (through its caches) against what memory says now. Returns (walk, truth)."""
        va = parse_address(self.address.value if address is None else hx(address))
        # The RID_PASID entry serves requests without a PASID (VT-d 9.4).
        pasid = None if self.pasid.value == self.rid_pasid.get(self.rid) else self.pasid.value
        w = self.iommu.translate(self.rid, va, pasid=pasid, access=access)
        t = self.truth.translate(self.rid, va, pasid=pasid, access=access)
        got = f"HPA {w.pa:#x}" if w.ok else f"fault: {w.fault}"
        now = f"HPA {t.pa:#x}" if t.ok else f"fault: {t.fault}"
        cache = ", ".join(f"{k} {v}" for k, v in (getattr(w, "cache", None) or {}).items())
        if (w.ok, w.pa) == (t.ok, t.pa):
            self.dma.value = message_html(
                f"DMA {va:#x} ({_who(pasid)}): {got}; memory agrees. Caches: {cache}", "ok")
            self.dma.remove_class("svmkit-stale")
        else:
            self.dma.value = message_html(
                f"STALE: DMA {va:#x} ({_who(pasid)}) used a cached translation: {got}, "
                f"but the tables now say {now}. Caches: {cache}", "error")
            self.dma.add_class("svmkit-stale")
        self._render()
        return w, t

    # -- drawing ---------------------------------------------------------------------------

    @guarded
    def _render(self):
        rows = self.pasid_rows()
        pgtt = self._VS.PGTT_NAMES
        self.table.value = _table(
            ["PASID", "P", "PGTT", "FLPTR", "SLPTPTR", "AW", "DID", "FPD", "SRE", "entry HPA"],
            [[r["pasid"], r["p"], f"{r['pgtt']} {pgtt.get(r['pgtt'], '')}", hx(r["flptptr"]),
              hx(r["slptptr"]), r["aw"], r["did"], r["fpd"], r["sre"], hx(r["entry"])]
             for r in rows],
            row_class=lambda i: "" if rows[i]["p"] else "svmkit-stale")
        keep = self.pasid.value
        rp = self.rid_pasid.get(self.rid)
        self.pasid.options = [(f"{r['pasid']} (no-PASID requests)" if r["pasid"] == rp
                               else str(r["pasid"]), r["pasid"]) for r in rows]
        if keep in [r["pasid"] for r in rows]:
            self.pasid.value = keep
        elif rows:      # prefer a real PASID over the RID_PASID entry
            self.pasid.value = next((r["pasid"] for r in rows if r["pasid"] != rp),
                                    rows[0]["pasid"])
        pcs = self.stale_pasid_cache()
        tlb = self.stale_iotlb()
        parts = ["<div><b>PASID cache</b></div>", _table(
            ["source id", "PASID", "PGTT", "first root", "second root", "DID", "state"],
            [[hx(k[0]), k[1], pe.pgtt, hx(pe.first_root), hx(pe.second_root), pe.did,
              "STALE" if stale else "ok"] for k, pe, stale in pcs],
            row_class=lambda i: "svmkit-reserved" if pcs[i][2] else "")]
        parts += ["<div><b>IOTLB</b></div>", _table(
            ["DID", "PASID", "input page", "size", "HPA", "state"],
            [[e["did"], e["pasid"], hx(e["address"]), hx(e["page_size"]), hx(e["pa"]),
              "STALE" if stale else "ok"] for e, stale in tlb],
            row_class=lambda i: "svmkit-reserved" if tlb[i][1] else "")]
        parts.append(f"<div>context cache: {len(self.iommu.context_cache)} entries; "
                     f"paging-structure caches: first level {len(self.iommu.fl_psc)}, "
                     f"second level {len(self.iommu.sl_psc)}; pending invalidations: "
                     f"{len(self.pending)}</div>")
        self.caches.value = "".join(parts)
