"""Format modules: registry, entry builders and decoding, as the specs lay the bits out."""

import pytest

from svmkit import formats
from svmkit.formats import layout as L
from svmkit.formats import vtd_sl, x86_64


def test_registry_finds_modules_by_file_name():
    assert {"x86_64", "vtd_sl"} <= set(formats.names())
    assert formats.get("x86_64") is x86_64.FORMAT
    with pytest.raises(ValueError, match="fmt='arm'.*allowed: .*x86_64"):
        formats.get("arm")


def test_x86_leaf_and_table_decode():
    f = x86_64.FORMAT
    e = f.leaf(0x1234_5000, write=False, user=True, xd=True, a=True, d=True, g=True)
    fields = f.decode(e, 1)
    assert fields["form"] == "leaf" and fields["addr"] == 0x1234_5000
    assert (fields["p"], fields["rw"], fields["us"], fields["a"], fields["d"], fields["g"],
            fields["xd"]) == (1, 0, 1, 1, 1, 1, 1)
    assert fields["reserved"] == 0
    big = f.leaf(0x4000_0000, 3)
    assert f.decode(big, 3)["form"] == "leaf" and f.decode(big, 3)["ps"] == 1
    assert f.decode(f.table(0x5000), 4)["form"] == "table"
    # bit 13 is reserved in a 2 MiB leaf, bit 12 (PAT) is not
    assert f.decode(f.leaf(0x20_0000, 2) | 1 << 12, 2)["reserved"] == 0
    assert f.decode(f.leaf(0x20_0000, 2) | 1 << 13, 2)["reserved"] == 1 << 13


def test_x86_descriptor_reserved_bits_follow_maxphyaddr():
    d = x86_64.FORMAT.descriptor(4, phys_bits=46)
    assert L.to_u64(d[1, L.L_RSVD_LEAF]) == ((1 << 52) - 1) ^ ((1 << 46) - 1)
    assert d[4, L.L_RSVD_TABLE] & x86_64.PS
    assert d[0, L.G_INPUT_BITS] == 48
    assert x86_64.FORMAT.descriptor(5)[0, L.G_INPUT_BITS] == 57
    with pytest.raises(ValueError, match="levels=3"):
        x86_64.FORMAT.descriptor(3)


def test_vtd_sl_has_no_present_bit_and_reserves_snp_in_tables():
    f = vtd_sl.FORMAT
    d = f.descriptor(4)
    assert d[1, L.L_PRESENT_ANY] == vtd_sl.R | vtd_sl.W
    assert f.descriptor(4, slee=True)[1, L.L_PRESENT_ANY] == 7
    assert f.decode(f.table(0x3000) | vtd_sl.SNP, 3, d)["reserved"] == vtd_sl.SNP
    assert f.decode(f.leaf(0x3000, snp=True), 1, d)["reserved"] == 0
    assert f.decode(f.leaf(0x3000), 1, d)["emt"] == 6
    assert f.descriptor(4, ad=True)[0, L.G_A] == vtd_sl.A
    assert f.descriptor(4)[0, L.G_A] == 0
    assert f.descriptor(3)[0, L.G_INPUT_BITS] == 39


@pytest.mark.parametrize("reason,access,user,code", [
    ("not-present", "r", False, 0), ("not-present", "w", True, 6),
    ("permission", "x", True, 0b10101), ("reserved-bit", "r", False, 0b1001),
    ("address-width", "r", False, None), ("non-existent-memory", "r", False, None),
])
def test_x86_page_fault_error_codes(reason, access, user, code):
    assert x86_64.FORMAT.fault_code(reason, access, user) == code


def test_structure_names_follow_the_spec():
    assert x86_64.FORMAT.structure(4, False) == "pml4e"
    assert x86_64.FORMAT.structure(2, True) == "pde-2m"
    assert vtd_sl.FORMAT.structure(5, False) == "sl-pml5e"
