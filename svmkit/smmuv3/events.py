"""SMMUv3 events: the spec's names and numbers, and the fault values translations return.

IHI 0070, 7.3 "Event records" (7.3.1 to 7.3.20). ``EVENTS`` maps each event number to its
name and what it means; :class:`Event` is the :class:`svmkit.Fault` a translation returns,
with the event record's fields (StreamID, SubstreamID, S2, CLASS, the IPA of a stage 2
fault) on top of the common ones. ``Event.stage`` is "ste" (stream table: C_BAD_STREAMID,
F_STE_FETCH, C_BAD_STE, F_STREAM_DISABLED, or an abort STE), "cd" (C_BAD_SUBSTREAMID,
F_CD_FETCH, C_BAD_CD), "first" or "second" (translation faults of stage 1 or stage 2).
"""

import textwrap
from dataclasses import dataclass

from ..walks import Fault

EVENTS = {
    0x01: ("F_UUT", "unsupported upstream transaction"),
    0x02: ("C_BAD_STREAMID", "StreamID beyond the stream table, or no level 2 table for it"),
    0x03: ("F_STE_FETCH", "external abort fetching the STE (or level 1 descriptor)"),
    0x04: ("C_BAD_STE", "the STE is not valid or holds an illegal value"),
    0x05: ("F_BAD_ATS_TREQ", "ATS translation request not allowed"),
    0x06: ("F_STREAM_DISABLED", "transaction without a SubstreamID, STE.S1DSS terminates it"),
    0x07: ("F_TRANSL_FORBIDDEN", "translated transaction not allowed"),
    0x08: ("C_BAD_SUBSTREAMID", "SubstreamID beyond S1CDMax, substreams disabled, or no "
                                "level 2 CD table"),
    0x09: ("F_CD_FETCH", "external abort fetching the CD (or level 1 CD descriptor)"),
    0x0A: ("C_BAD_CD", "the CD is not valid or holds an illegal value"),
    0x0B: ("F_WALK_EABT", "external abort during a translation table walk"),
    0x10: ("F_TRANSLATION", "invalid descriptor, or input address beyond the input size"),
    0x11: ("F_ADDR_SIZE", "output or table address beyond the output size"),
    0x12: ("F_ACCESS", "access flag clear"),
    0x13: ("F_PERMISSION", "access not permitted"),
    0x20: ("F_TLB_CONFLICT", "TLB conflict"),
    0x21: ("F_CFG_CONFLICT", "configuration cache conflict"),
    0x24: ("E_PAGE_REQUEST", "speculative page request hint"),
    0x25: ("F_VMS_FETCH", "external abort fetching the VMS"),
}
CODES = {name: code for code, (name, _) in EVENTS.items()}

#: Stage names of an Event (see the module docstring).
STAGES = ("ste", "cd", "first", "second")


@dataclass(frozen=True)
class Event(Fault):
    """A fault as the SMMU records it: ``name`` (e.g. "F_TRANSLATION", None for an STE
    that aborts without an event), ``code`` (its number), ``stream_id``, ``ssid`` (None
    without a SubstreamID), ``s2`` (the fault is stage 2's), ``cls`` ("CD": while fetching
    a CD, "TT": while fetching a stage 1 table, "IN": the input address itself), ``ipa``
    (for a stage 2 fault, the IPA that faulted), ``recorded`` (whether the event queue gets
    a record: CD.R and STE.S2R control it for translation faults; an abort STE records
    nothing) and ``input_address`` (the transaction's address, the record's InputAddr;
    ``address`` is the faulting stage's input, as for every :class:`svmkit.Fault`)."""

    name: str | None = None
    stream_id: int = 0
    ssid: int | None = None
    s2: bool = False
    cls: str | None = None
    ipa: int | None = None
    recorded: bool = True
    input_address: int | None = None

    @property
    def arm_level(self):
        """The Arm lookup level (0 top to 3) of a translation fault; ``level`` counts the
        walker's way (1 leaf-most). None for an STE or CD fault."""
        return 4 - self.level if self.stage in ("first", "second") else None

    def __str__(self):
        """Wrapped at 72 columns (mail-friendly)."""
        what = "abort, no event" if self.name is None else f"{self.name} ({self.code:#04x})"
        where = self.stage if self.arm_level is None else f"{self.stage} L{self.arm_level}"
        ssid = "" if self.ssid is None else f" ssid {self.ssid:#x}"
        addr = self.address if self.input_address is None else self.input_address
        text = f"{what} {where} {self.reason}: sid {self.stream_id:#x}{ssid} addr {addr:#x}" \
            + ("" if self.ipa is None else f" ipa {self.ipa:#x}") \
            + (f" class {self.cls}" if self.cls else "")
        return textwrap.fill(text, 72, subsequent_indent="  ", break_long_words=False,
                             break_on_hyphens=False)


def event(name, stage, level, reason, address, access, stream_id, ssid, **kw):
    """An :class:`Event` for the event called ``name`` (None: abort without an event)."""
    return Event(stage, level, reason, address, CODES.get(name), access, name=name,
                 stream_id=stream_id, ssid=ssid, **kw)
