"""Fault reasons, stages and access kinds shared by every walker and model.

Reasons are short stable names; each model maps them to its architecture's numbers (the x86
#PF error code, VT-d fault reasons, SMMUv3 event numbers, AMD-Vi event codes).
"""

REASONS = (
    "ok",
    "not-present",          # no present bit (x86 P=0; VT-d SL R=W=0; Arm invalid descriptor)
    "reserved-bit",         # a bit that must be zero is set
    "permission",           # present, but the access is not allowed
    "non-existent-memory",  # a table read hit no installed memory
    "address-width",        # input address beyond the stage's width (or not canonical)
    "access-flag",          # Arm: AF clear in a leaf and no hardware update
    "address-size",         # Arm: an output address beyond the output size
    "ad-permission",        # nested: the second stage refuses the write that sets a
                            # first-stage entry's accessed or dirty flag (VT-d 0x77)
)
OK = 0

STAGES = ("first", "second")
FIRST, SECOND = 0, 1

ACCESSES = ("r", "w", "x")
R, W, X = 0, 1, 2


def reason_id(name):
    return REASONS.index(name)
