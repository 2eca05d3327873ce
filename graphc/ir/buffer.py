"""Where a kernel's output lives: one entry of the memory plan's `buffers` attr (passes/memory.py).

    Buffer("arena", offset=N)   "arena+N"   an intermediate at byte N of the graph's one arena
    Buffer("out")               "out"       a fresh buffer per call
    Buffer("state", state=S)    "state:S"   written in place into state input %S's own buffer
    Buffer("view")              "view"      a reshape: aliases its input's buffer

The plan holds these records; the IR text keeps the strings on the right (`str(b)` is one,
`repr(b)` its quoted literal, which the printer writes; the parser reads it back with
`Buffer.parse`), so a dump reads `buffers=('arena+0', 'out')` and parses back to records.
`Buffer.of` accepts either form (a plan written by hand may hold the strings). A record never
equals its text: compare records (`b.kind == "arena"`, `b == Buffer("out")`), not strings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

KINDS = ("arena", "out", "state", "view")


@dataclass(frozen=True)
class Buffer:
    kind: Literal["arena", "out", "state", "view"]
    offset: Optional[int] = None      # kind "arena": the byte offset in the arena
    state: Optional[str] = None       # kind "state": the name of the state input written

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"buffer kind {self.kind!r} is not one of {', '.join(KINDS)}")
        fields = f"kind={self.kind!r}, offset={self.offset!r}, state={self.state!r}"
        if (self.kind == "arena") != (self.offset is not None):
            raise ValueError(f"an arena buffer has an offset, no other does: {fields}")
        if (self.kind == "state") != (self.state is not None):
            raise ValueError(f"a state buffer names its state input, no other does: {fields}")

    def __repr__(self) -> str:
        # the literal the IR text prints (and Buffer.parse reads back): 'arena+0', 'out', ...
        return repr(str(self))

    def __str__(self) -> str:
        if self.kind == "arena":
            return f"arena+{self.offset}"
        if self.kind == "state":
            return f"state:{self.state}"
        return self.kind

    @classmethod
    def parse(cls, text: str) -> "Buffer":
        """The record printed as `text` ("arena+N", "out", "state:S", "view")."""
        if not isinstance(text, str):
            raise ValueError(f"a buffer is a string like 'arena+0', 'out', 'state:w' or 'view', "
                             f"not {text!r}")
        if text.startswith("arena+"):
            n = text[len("arena+"):]
            if not n.isdigit():
                raise ValueError(f"bad buffer {text!r}: the arena offset is not a byte count")
            return cls("arena", offset=int(n))
        if text.startswith("state:"):
            if not text[len("state:"):]:
                raise ValueError(f"bad buffer {text!r}: no state input named")
            return cls("state", state=text[len("state:"):])
        if text in ("out", "view"):
            return cls(text)
        raise ValueError(f"bad buffer {text!r} (expected 'arena+N', 'out', 'state:S' or 'view')")

    @classmethod
    def of(cls, b) -> "Buffer":
        """A record from a record or its text form."""
        return b if isinstance(b, Buffer) else cls.parse(b)


def buffers_of(node):
    """The node's `buffers` as records (None for an unplanned node)."""
    bufs = node.attrs.get("buffers")
    return None if bufs is None else tuple(Buffer.of(b) for b in bufs)


def buffer_of(node, value) -> Buffer:
    """Where the node's output `value` lives."""
    return Buffer.of(node.attrs["buffers"][node.outs.index(value)])
