"""Rule ids for tests: drivers install rules with the caller's ids (saga's store allocates them)."""
from __future__ import annotations

from collections.abc import Iterable

from saga.rules import parse
from saga.rules.model import Rule


def numbered(rules: Iterable[Rule | str], first: int = 1) -> list[Rule]:
    """The rules (Rule or rule text) with ids first, first + 1, ... where they have none."""
    out = []
    for i, r in enumerate(rules, first):
        rule = parse(r) if isinstance(r, str) else r
        out.append(rule if rule.id is not None else rule.with_id(i))
    return out
