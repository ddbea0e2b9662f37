"""The PASID table editor: changes without invalidation leave stale translations that a
DMA uses; the right descriptors remove them (VT-d 6.5.3)."""

from __future__ import annotations

import pytest

pytest.importorskip("svmkit.scenario", reason="svmkit.scenario is not in the kit yet")
pytest.importorskip("svmkit.vtd", reason="svmkit.vtd is not in the kit yet")

from svmkit.widgets import PasidTableEditor  # noqa: E402


@pytest.fixture
def editor():
    e = PasidTableEditor("nested-vtd")
    assert e.message.value == ""
    return e


def bound_pasid(e):
    rows = [r for r in e.pasid_rows() if r["p"] and r["pasid"] != e.rid_pasid.get(e.rid)]
    assert rows
    return rows[0]["pasid"]


def test_unbind_without_invalidation_leaves_a_stale_translation(editor):
    pasid = bound_pasid(editor)
    editor.pasid.value = pasid
    w, t = editor.issue_dma()
    assert w.ok and t.ok and w.pa == t.pa
    ops = editor.unbind(pasid)
    names = [d.name for d in ops.invalidations]
    assert "pc_inv_dsc" in names and "p_iotlb_inv_dsc" in names
    w, t = editor.issue_dma()
    assert w.ok and not t.ok                       # the IOMMU still translates: stale
    assert "STALE" in editor.dma.value
    assert "STALE" in editor.caches.value
    editor._issue_pending()
    w, t = editor.issue_dma()
    assert not w.ok and not t.ok                   # now it faults, as memory says
    assert "STALE" not in editor.dma.value and "STALE" not in editor.caches.value


def test_buttons_after_unbind_use_the_did_the_entry_had(editor):
    pasid = bound_pasid(editor)
    editor.pasid.value = pasid
    editor.issue_dma()
    editor.unbind(pasid)
    editor._pc_pasid()
    # The entry is read again and faults before the IOTLB is consulted, but the IOTLB
    # still holds the old translation under the old DID: stale, waiting for a rebind.
    w, t = editor.issue_dma()
    assert not w.ok and not t.ok
    assert any(stale for _e, stale in editor.stale_iotlb())
    editor._piotlb_pasid()
    assert editor.iommu.iotlb.entries() == []
    assert "STALE" not in editor.caches.value


def test_pasid_cache_invalidation_alone_leaves_the_iotlb_stale(editor):
    pasid = bound_pasid(editor)
    editor.pasid.value = pasid
    editor.issue_dma()
    editor.modify(pasid, pgtt="second")            # nested -> second-level only
    editor._pc_pasid()
    w, t = editor.issue_dma()
    assert w.pa != t.pa and "STALE" in editor.dma.value     # the IOTLB entry survived
    editor._piotlb_pasid()
    w, t = editor.issue_dma()
    assert (w.ok, w.pa) == (t.ok, t.pa)


def test_bind_adds_a_row_and_bad_input_is_a_message(editor):
    before = {r["pasid"] for r in editor.pasid_rows()}
    editor.bind(editor.process.options[0], 9)
    after = {r["pasid"]: r for r in editor.pasid_rows()}
    assert set(after) - before == {9} and after[9]["p"] == 1
    editor.field.value = "did"
    editor.value.value = "twelve"
    editor._run(editor._write)
    assert "svmkit-msg-error" in editor.message.value and "Traceback" not in editor.message.value


def test_editor_refuses_a_model_it_does_not_model():
    with pytest.raises(ValueError, match="scenario: the PASID table editor models VT-d"):
        PasidTableEditor("nested-smmuv3")
