"""Importing Linux intel-iommu debugfs dumps into scenarios."""

import random

import pytest

from svmkit import cli, debugfs
from svmkit.scenario import load, loads, dumps

pytest.importorskip("svmkit.vtd")

# Written by hand in the format of drivers/iommu/intel/debugfs.c: a
# scalable-mode unit, device 00:02.0 with its RID_PASID (0) entry
# second-stage only (PGTT 010b, AW 010b = 4 levels), DID 1; its domain maps
# IOVA 0xfffff000 to HPA 0x7654000 and IOVA 0x40000000 (2 MiB) to 0x8000000.
DMAR = (
    "IOMMU dmar0: Root Table Address: 0x100000\n"
    "B.D.F\tRoot_entry\t\t\t\tContext_entry\t\t\t\tPASID\tPASID_table_entry\n"
    "00:02.0\t0x0000000000000000:0x0000000000101001\t"
    "0x0000000000000000:0x0000000000102009\t0     \t"
    "0x0000000000000000:0x0000000000000001:0x0000000000200089\n"
    "\n"
    "IOMMU dmar1: Root Table Address: 0x300000\n"
    "B.D.F\tRoot_entry\t\t\t\tContext_entry\t\t\t\tPASID\tPASID_table_entry\n"
)
DOMAIN = (
    "Device 0000:00:02.0 @0x200000\n"
    "IOVA_PFN\t\tPML5E\t\t\tPML4E\t\t\tPDPE\t\t\tPDE\t\t\tPTE\n"
    "0x00000000fffff |\t0x0000000000000000\t0x0000000000201003\t0x0000000000202003\t"
    "0x0000000000203003\t0x0000000007654003\n"
    "0x0000000040000 |\t0x0000000000000000\t0x0000000000201003\t0x0000000000204003\t"
    "0x0000000008000083\t0x0000000000000000\n"
    "\n"
)


def test_hand_written_dump_translates():
    s = debugfs.import_text(DMAR, DOMAIN, name="box")
    assert [d.bdf for d in s.devices] == ["00:02.0"]
    assert "dmar1" in s.description
    b = s.build(caches="off")
    w = b.translate("00:02.0", 0xfffff123)
    assert w.ok and w.pa == 0x7654123
    assert [r.structure for r in w.refs[:4]] == ["root-entry", "context-entry",
                                                  "pasid-directory-entry", "pasid-entry"]
    w = b.translate("00:02.0", 0x40012345, access="w")
    assert w.ok and w.pa == 0x8012345 and w.page_size == 1 << 21
    assert not b.translate("00:02.0", 0x1000).ok
    # The PASID table the dump does not show is labelled as made up.
    assert "synthesized" in b.name(w.refs[3].address)
    assert b.name(w.refs[4].address).startswith("host page table (top of 00:02.0")
    # Saved and loaded, the image is the same.
    b2 = loads(dumps(s)).build(caches="off")
    assert b2.translate("00:02.0", 0xfffff123).pa == 0x7654123


@pytest.mark.parametrize("name", ["userspace-driver-2017", "nested-vtd",
                                  "broken-isolation"])
def test_dump_then_import_round_trip(name):
    s = load(name)
    b = s.build(caches="off")
    dmar, dom = debugfs.dump(b)
    assert all(l.isascii() for l in (dmar + dom).splitlines())
    imp = debugfs.import_text(dmar, dom).build(caches="off")
    cfgs = [c for c in b.adapter.contexts() if c.kind in ("first", "second")]
    assert cfgs
    rng = random.Random(0)
    for c in cfgs:
        from svmkit.graphs import leaves
        root, fmt, lv = ((c.first_root, c.first_fmt, c.first_levels) if c.kind == "first"
                         else (c.second_root, c.second_fmt, c.second_levels))
        for x in leaves(b.mem, root, fmt, lv)[:20]:
            va = x.va + rng.randrange(x.size)
            a = b.translate(c.rid, va, pasid=c.pasid)
            z = imp.translate(c.rid, va, pasid=c.pasid)
            assert a.ok and z.ok and a.pa == z.pa
            # Every entry read is the same, but the PASID-directory entry:
            # the dump does not give its PASID table's address.
            same = lambda w: [(r.structure, r.value) for r in w.refs
                              if r.structure != "pasid-directory-entry"]
            assert same(a) == same(z)


def test_import_dir_and_cli(tmp_path, capsys):
    d = tmp_path / "intel"
    (d / "0000:00:02.0").mkdir(parents=True)
    (d / "dmar_translation_struct").write_text(DMAR)
    (d / "0000:00:02.0" / "domain_translation_struct").write_text(DOMAIN)
    s = debugfs.import_dir(d)
    assert s.name == "intel"
    out = tmp_path / "m.toml"
    assert cli.main(["import-debugfs", str(d), "-o", str(out)]) == 0
    b = load(out).build()
    assert b.translate("00:02.0", 0xfffff000).pa == 0x7654000
    assert cli.main(["walk", str(out), "--device", "00:02.0", "--address", "0xfffff000"]) == 0
    assert "0x7654000" in capsys.readouterr().out
    assert cli.main(["import-debugfs", str(tmp_path / "nowhere")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_bad_lines_are_named():
    with pytest.raises(ValueError, match=r"dmar_translation_struct:3: cannot read"):
        debugfs.parse_dmar(DMAR.replace("00:02.0\t", "zz:02.0\t"))
    with pytest.raises(ValueError, match=r"domain_translation_struct:3"):
        debugfs.parse_domains(DOMAIN.replace(" |", " ?"))
    with pytest.raises(ValueError, match="no remapping unit"):
        debugfs.import_text("")


def test_legacy_mode_dump():
    """A legacy-mode unit (VT-d 9.1/9.3): PASID -1, 128-bit context entries
    holding the second-level table (TT 00b, AW 010b: 4 levels, DID 2)."""
    dmar = ("IOMMU dmar0: Root Table Address: 0x100000\n"
            "B.D.F\tRoot_entry\t\t\t\tContext_entry\t\t\t\tPASID\tPASID_table_entry\n"
            "00:1f.3\t0x0000000000000000:0x0000000000101001\t"
            "0x0000000000000202:0x0000000000200001\t-1    \t"
            "0x0000000000000000:0x0000000000000000:0x0000000000000000\n")
    s = debugfs.import_text(dmar, DOMAIN.replace("00:02.0", "00:1f.3"))
    assert s.image["ttm"] == "legacy"
    b = s.build(caches="off")
    w = b.translate("00:1f.3", 0xfffff008)
    assert w.ok and w.pa == 0x7654008
    assert [r.structure for r in w.refs[:2]] == ["root-entry", "context-entry"]
    from svmkit.graphs import audit, structure_graph
    a = audit(b)
    assert [(r.device, r.pasid, r.kind) for r in a.reaches] == [("00:1f.3", None, "second")]
    g = structure_graph(b)
    assert all((r.address & ~0xFFF) in g for r in w.refs)
