"""The directory tree built from the table (table.py), and inode numbers.

Every path of the table is a chain of templates: a template is a fixed
name or a parameter (`{pid}`).  A node is a template with the value of
its parameter (0 when it has none), and its inode number is computed, not
allocated: `value << 8 | template index`, so the kernel can ask about an
inode at any time (after the process left the window too) and nothing
needs reference counting.  The root is template 1 with value 0, inode 1
(FUSE's root).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from saga.sagafs.table import PARAMS, TABLE, File, Param

_INDEX_BITS = 8
ROOT_INDEX = 1
STATIC_ENTRY_TIMEOUT = 60.0


@dataclass(eq=False)
class Template:
    index: int
    name: str | None                  # a fixed name, or None for a parameter level
    param: str | None                 # the parameter's name (`pid`) when name is None
    parent: Template | None
    file: File | None = None          # None: a directory
    children: list[Template] = field(default_factory=list)

    @property
    def is_dir(self) -> bool:
        return self.file is None

    @property
    def owner_param(self) -> str | None:
        """The parameter whose value nodes of this template carry (theirs or an ancestor's)."""
        t: Template | None = self
        while t is not None:
            if t.param is not None:
                return t.param
            t = t.parent
        return None


@dataclass(frozen=True)
class Node:
    template: Template
    value: int

    @property
    def inode(self) -> int:
        return self.value << _INDEX_BITS | self.template.index

    @property
    def is_dir(self) -> bool:
        return self.template.is_dir

    @property
    def file(self) -> File | None:
        return self.template.file


class Tree:
    def __init__(self, table: tuple[File, ...] = TABLE, params: dict[str, Param] = PARAMS) -> None:
        self.params = params
        self.root = Template(ROOT_INDEX, "", None, None)
        self.templates = {ROOT_INDEX: self.root}
        for f in table:
            self._add(f)

    def _add(self, f: File) -> None:
        parts = f.path.split("/")
        t = self.root
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            is_param = part.startswith("{") and part.endswith("}")
            name, param = (None, part[1:-1]) if is_param else (part, None)
            if param is not None and (param not in self.params or t.owner_param is not None):
                raise ValueError(f"{f.path}: unknown parameter {part} or more than one parameter in a path")
            child = next((c for c in t.children if c.name == name and c.param == param), None)
            if child is None:
                if any(c.param is not None for c in t.children) or (param is not None and t.children):
                    raise ValueError(f"{f.path}: a parameter level has no siblings")
                index = len(self.templates) + ROOT_INDEX
                if index >= 1 << _INDEX_BITS:
                    raise ValueError("too many templates for the inode layout")
                child = Template(index, name, param, t, f if last else None)
                self.templates[index] = child
                t.children.append(child)
            elif last or child.file is not None:
                raise ValueError(f"{f.path}: declared twice or below a file")
            t = child

    # -- nodes -------------------------------------------------------------------------
    def node(self, inode: int) -> Node | None:
        t = self.templates.get(inode & ((1 << _INDEX_BITS) - 1))
        if t is None:
            return None
        value = inode >> _INDEX_BITS
        if value and t.owner_param is None:
            return None
        return Node(t, value)

    async def child(self, fs, parent: Node, name: str) -> Node | None:
        for t in parent.template.children:
            if t.name is not None:
                if t.name == name:
                    return Node(t, parent.value)
            elif t.param is not None:
                value = await self.params[t.param].parse(fs, name)
                if value is not None:
                    return Node(t, value)
        return None

    async def children(self, fs, parent: Node) -> list[tuple[str, Node]]:
        out = []
        for t in parent.template.children:
            if t.name is not None:
                out.append((t.name, Node(t, parent.value)))
            elif t.param is not None:
                out.extend((name, Node(t, value)) for name, value in await self.params[t.param].names(fs))
        return out

    def entry_timeout(self, node: Node) -> float:
        param = node.template.owner_param
        return STATIC_ENTRY_TIMEOUT if param is None else self.params[param].entry_timeout

    def path(self, node: Node) -> str:
        """The node's path in the table's spelling (`procs/{pid}/log`), for messages."""
        parts = []
        t: Template | None = node.template
        while t is not None and t.index != ROOT_INDEX:
            parts.append(t.name if t.name is not None else f"{{{t.param}}}")
            t = t.parent
        return "/".join(reversed(parts))
