"""The comparison: counts come from real walks and obey n(m+1)+m plus the structure reads."""

import pytest

from svmkit.compare import (FACTS, FIRST_FORMAT, ROWS, SETUP_ARCH, SETUPS, Unavailable,
                            Unsupported, breakdown, build, compare, split_refs)
from svmkit.formats import get

# structures each set-up reads before the page walk, as (structure entries read, how many
# of them sit at a GPA/IPA the m-level second stage must translate first); the spec says where each
# structure lives: VT-d scalable root/context/PASID dir/PASID entry are HPAs (VT-d 9.1-9.6);
# VT-d extended root/context HPAs, the PASID table a GPA under nesting (VT-d 2.x 9.4);
# SMMUv3 STE an HPA, the CD an IPA (IHI 0070 5.2); AMD DTE an HPA, the one-level GCR3
# table a GPA (48882 2.2), each GCR3 entry then read at its HPA.
STRUCTURES = {
    "vtd-sm": (4, 0),
    "vtd-ecs": (3, 1),
    "smmuv3": (2, 1),
    "amdvi": (2, 1),
}
NATIVE = {"vtd": 4, "amdvi": 2, "smmuv3": 2}


def measure(setup, **kw):
    arch = kw.get("native_arch", SETUP_ARCH.get(setup))
    n = kw.get("n", 4)
    try:
        first = get(FIRST_FORMAT[arch])
    except ValueError:
        pytest.skip(f"format {FIRST_FORMAT[arch]} not installed")
    if n not in first.levels_allowed:
        with pytest.raises(Unavailable):     # said so, not a crash
            build(setup, **kw)
        pytest.skip(f"{FIRST_FORMAT[arch]} has no {n}-level tables")
    try:
        return build(setup, **kw)
    except Unsupported:
        raise
    except Unavailable as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("setup", ["vtd-sm", "vtd-ecs", "smmuv3", "amdvi"])
@pytest.mark.parametrize("n,m", [(4, 4), (4, 3), (5, 4), (3, 4)])
def test_nested_counts_follow_the_formula(setup, n, m):
    x = measure(setup, n=n, m=m)
    assert x.walk.ok and x.walk.nested
    entries, via_second = STRUCTURES[setup]
    assert x.walk_refs == n * (m + 1) + m
    assert x.structure_refs == entries + via_second * m
    assert x.refs == entries + via_second * m + n * (m + 1) + m
    assert breakdown(x) == (entries, via_second * m, n, (n + 1) * m)


@pytest.mark.parametrize("arch", ["vtd", "amdvi", "smmuv3"])
@pytest.mark.parametrize("n", [3, 4, 5])
def test_native_counts(arch, n):
    x = measure("native", native_arch=arch, n=n)
    assert x.walk.ok and not x.walk.nested and x.arch == arch
    assert x.walk_refs == n and x.structure_refs == NATIVE[arch]


def test_split_finds_the_page_walk():
    x = measure("amdvi")
    k, rest = split_refs(x.walk, 4, 4)
    first = x.walk.refs[k]
    assert first.stage == "second" and first.guest_level == 4
    assert all(r.stage in ("dte", "gcr3", "second") for r in x.walk.refs[:k])


def test_pasid_change_costs_come_from_driver_ops():
    x = measure("amdvi")
    assert [w[3].split()[0] for w in x.bind_ops.writes] == ["gcr3-entry"]
    assert [(c.name, c.gn) for c in x.bind_ops.invalidations] == [
        ("INVALIDATE_IOMMU_PAGES", True)]
    c = compare(columns=("amdvi",))
    assert c.row("bind_writes").cells["amdvi"].value == len(x.bind_ops.writes)
    assert "gcr3-entry" in c.row("bind_what").cells["amdvi"].text


def test_missing_model_says_so():
    c = compare()
    for setup in SETUPS:
        cell = c.row("refs").cells[setup]
        if isinstance(c.measured[setup], Unavailable):
            assert cell.text == c.measured[setup].label and cell.value is None
        else:
            assert cell.value == c.measured[setup].refs and cell.source == "walk"


def test_text_fits_72_columns_and_names_every_setup():
    c = compare()
    text = c.text()
    assert all(len(line) <= 72 for line in text.splitlines())
    for label in ROWS.values():
        assert label + ":" in text
    assert "Alex Williamson" in text and "Kevin Tian" in text
    amd = c.measured["amdvi"]
    grid = next(line for line in text.splitlines() if line.startswith("refs per"))
    assert str(amd.refs) in grid.split()
    with pytest.raises(ValueError, match="width"):
        c.text(width=40)


def test_every_fact_has_a_source():
    for key, cells in FACTS.items():
        assert key in ROWS and set(cells) == set(SETUPS)
        for setup, (text, source) in cells.items():
            assert text and source, (key, setup)


def test_records_and_figure(tmp_path):
    c = compare()
    recs = c.records()
    assert [r["key"] for r in recs][:3] == ["refs", "structure_refs", "walk_refs"]
    assert recs[0]["amdvi"] == (str(c.measured["amdvi"].refs), "walk")
    fig = c.figure()
    ax = fig.axes[0]
    heights = {}
    for bar in ax.patches:
        x = round(bar.get_x() + bar.get_width() / 2)
        heights[x] = heights.get(x, 0) + bar.get_height()
    amd_x = list(c.columns).index("amdvi")
    assert heights[amd_x] == c.measured["amdvi"].refs
    fig.savefig(tmp_path / "compare.png")
    assert (tmp_path / "compare.png").stat().st_size > 1000


def test_arguments():
    with pytest.raises(ValueError, match="setup"):
        build("ppc")
    with pytest.raises(ValueError, match="native_arch"):
        build("native", native_arch="riscv")
    with pytest.raises(ValueError, match="columns"):
        compare(columns=("amdvi", "x"))


def test_command_line(capsys, tmp_path):
    from svmkit.compare.__main__ import main
    assert main(["--figure", str(tmp_path / "c.svg")]) == 0
    out = capsys.readouterr().out
    assert "refs per translation" in out and max(map(len, out.splitlines())) <= 72
    assert (tmp_path / "c.svg").read_text().startswith("<?xml")


def test_native_on_every_installed_model():
    c = compare(columns=("native",))
    assert "amdvi" in c.native
    for arch, x in c.native.items():
        assert x.arch == arch and x.walk.ok and x.walk_refs == 4
    assert f"AMD-Vi {c.native['amdvi'].refs} (2 structure)" in " ".join(c.text().split())
