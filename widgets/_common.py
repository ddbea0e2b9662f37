"""Shared pieces of the widgets: input parsing, error containment, projector styling.

No widget may ever show a traceback: every callback runs through :func:`guarded`, which
turns an exception into a one-line message in the widget's message area.
"""

from __future__ import annotations

import functools
import html
import re

import ipywidgets as W

#: Large, high-contrast text that reads on a projector. Scoped to .svmkit so that it
#: changes nothing else in JupyterLab.
CSS = """
<style>
.svmkit { font-size: 15px; }
.svmkit .widget-label, .svmkit .widget-button, .svmkit .widget-dropdown select,
.svmkit .widget-text input, .svmkit .widget-readout { font-size: 15px; }
.svmkit .widget-button, .svmkit button.jupyter-button { min-height: 34px; }
.svmkit-msg-error { color: #991b1b; background: #fee2e2; border-left: 5px solid #dc2626;
  padding: 4px 10px; font-weight: bold; }
.svmkit-msg-info { color: #1e3a8a; background: #dbeafe; border-left: 5px solid #2563eb;
  padding: 4px 10px; }
.svmkit-msg-ok { color: #14532d; background: #dcfce7; border-left: 5px solid #16a34a;
  padding: 4px 10px; }
.svmkit-counter { font-size: 20px; font-weight: bold; }
.svmkit table.svmkit-fields { border-collapse: collapse; font-family: 'DejaVu Sans Mono',
  Menlo, Consolas, monospace; font-size: 15px; }
.svmkit table.svmkit-fields td, .svmkit table.svmkit-fields th { border: 1px solid #d1d5db;
  padding: 3px 10px; text-align: left; }
.svmkit table.svmkit-fields tr.svmkit-reserved td { background: #fecaca; color: #7f1d1d;
  font-weight: bold; }
.svmkit table.svmkit-fields tr.svmkit-stale td { background: #fef3c7; }
.svmkit .svmkit-svg svg { max-width: 100%; height: auto; }
</style>
"""

_HEX = re.compile(r"^(0x)?[0-9a-f]+$")


def parse_address(text, *, bits: int = 64, argument: str = "address") -> int:
    """``text`` as an address: hex with or without ``0x``, underscores and spaces allowed
    (``0x7f12_3456_7000``). Raises ValueError with a message fit for the widget."""
    s = str(text).strip().lower().replace("_", "").replace(" ", "")
    if not s:
        raise ValueError(f"{argument}: type a hex address, e.g. 0x7f1234567000")
    if s.startswith("-"):
        raise ValueError(f"{argument}: {text!r} is negative; addresses are 0 or more")
    if not _HEX.match(s) or s == "0x":
        raise ValueError(f"{argument}: {text!r} is not a hex number "
                         "(digits 0-9 and a-f, e.g. 0x7f1234567000)")
    value = int(s, 16)
    if value >> bits:
        raise ValueError(f"{argument}: {text!r} is wider than {bits} bits")
    return value


def hx(value) -> str:
    """An address or entry in hex, or a dash for None."""
    return "-" if value is None else f"{int(value):#x}"


def message_html(text: str, kind: str = "info") -> str:
    """A message box; ``kind`` is "info", "ok" or "error"."""
    return f"<div class='svmkit-msg-{kind}'>{html.escape(str(text))}</div>"


def describe_error(exc: BaseException) -> str:
    """One line for the user: ValueErrors carry their own message (they name the argument);
    anything else is a bug in the kit, said plainly without a traceback."""
    if isinstance(exc, ValueError):
        return str(exc)
    return f"internal error ({type(exc).__name__}: {exc}); please report it"


def guarded(method):
    """Run a widget callback; on an exception show a message in ``self.message``
    instead of letting a traceback reach the page."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the widget must survive anything
            self.show_message(describe_error(exc), "error")
            return None
    return wrapper


class Base(W.VBox):
    """A widget box with the kit's style and a message line (``show_message``)."""

    def __init__(self, children=(), **kwargs):
        self.message = W.HTML("")
        self.message.add_class("svmkit-message")
        # The message sits at the top, next to the inputs it is usually about.
        super().__init__([W.HTML(CSS), self.message, *children], **kwargs)
        self.add_class("svmkit")

    def show_message(self, text: str = "", kind: str = "info"):
        self.message.value = message_html(text, kind) if text else ""
        self.message.remove_class("svmkit-has-error")
        if text and kind == "error":
            self.message.add_class("svmkit-has-error")
