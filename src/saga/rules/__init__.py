"""Rules: the model, the one grammar, and their kernel form."""
from saga.rules.grammar import format, parse, parse_lines
from saga.rules.model import ACTIONS, Rule, slots_from_bitmap, tokens_for_slots

__all__ = ["ACTIONS", "Rule", "format", "parse", "parse_lines", "slots_from_bitmap", "tokens_for_slots"]
