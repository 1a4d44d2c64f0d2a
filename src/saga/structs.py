"""C structs mirrored from a header, by name: what tools/gen_uapi.py's mirrors (saga._uapi,
saga.drivers.ebpf._layout) are made of.  The sizes and offsets come from the C compiler; callers
pack and unpack by member name, never by position.
"""
from __future__ import annotations

import struct
from typing import NamedTuple


class Field(NamedTuple):
    name: str
    offset: int
    size: int
    elems: int
    code: str


class Layout(NamedTuple):
    name: str
    size: int
    fmt: str
    fields: tuple[Field, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    def offset(self, name: str) -> int:
        return self.field(name).offset

    def positions(self) -> dict[str, int]:
        """Where each member starts in the unpacked tuple (an array of numbers takes one item each);
        the key "" is one past the last."""
        out, pos = {}, 0
        for f in self.fields:
            out[f.name] = pos
            pos += 1 if f.code.endswith("s") else f.elems
        out[""] = pos
        return out

    def unpack(self, buf, offset: int = 0) -> dict:
        """The members by name (arrays of numbers as tuples)."""
        values = struct.unpack_from(self.fmt, buf, offset)
        out, i = {}, 0
        for f in self.fields:
            n = 1 if f.code.endswith("s") else f.elems
            out[f.name] = values[i] if n == 1 else values[i:i + n]
            i += n
        return out

    def pack(self, **values) -> bytearray:
        """The struct from members by name; missing ones are zero."""
        flat: list = []
        for f in self.fields:
            if f.code.endswith("s") or f.elems == 1:
                flat.append(values.get(f.name, b"" if f.code.endswith("s") else 0))
            else:
                v = list(values.get(f.name, ()))[:f.elems]
                flat.extend(v + [0] * (f.elems - len(v)))
        return bytearray(struct.pack(self.fmt, *flat))
