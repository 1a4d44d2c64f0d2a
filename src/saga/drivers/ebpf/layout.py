"""Python mirror of bpf/saga_bpf.h (the driver's own map layouts).

The loader compares every size here with the value size libbpf reports
for the built object, so a drift between the two fails the load loudly.
"""
from __future__ import annotations

import struct

from saga import _uapi

MAX_CONSUMERS = 8
VERSION_LEN = 32

# struct saga_bpf_config (the .bss map)
CONFIG = struct.Struct(f"<IIqQQQIIII{MAX_CONSUMERS}I{VERSION_LEN}s")
CFG_ENABLED = 0
CFG_ACTIONS = 4
CFG_REALTIME_OFFSET = 8
CFG_WAKE_BYTES = 16
CFG_READ = 24
CFG_RESET_NS = 32
CFG_RING_BYTES = 40
CFG_DEFAULT_ACTION = 44
CFG_LOCKED = 48
CFG_CONSUMERS = 56
CFG_VERSION = CFG_CONSUMERS + 4 * MAX_CONSUMERS

# struct saga_bpf_pcpu: SAGA_NR_SLOTS x (calls, errors), then four totals.
PCPU_TOTALS = struct.Struct("<4Q")
PCPU_SIZE = _uapi.SAGA_NR_SLOTS * 16 + PCPU_TOTALS.size

# struct saga_bpf_actions: one byte per slot, SAGA_ACT_* or ACT_WALK
ACT_WALK = 0x80
ACTIONS_SIZE = _uapi.SAGA_NR_SLOTS

# struct saga_bpf_ruleset
RS_HEAD = struct.Struct("<QIIII")  # generation, nr_rules, default_action, any_log, next_id
RS_SLOTS = struct.Struct(f"<{_uapi.SAGA_NR_SLOTS}H")
RS_RULES_OFF = RS_HEAD.size + RS_SLOTS.size
RULE = _uapi.SAGA_RULE_STRUCT
RULESET_SIZE = RS_RULES_OFF + _uapi.SAGA_MAX_RULES * RULE.size
SLOT_WALK = 0x8000
SLOT_INDEX = 0x03FF

# Map names in the object, as pinned (pin name = map name).
MAP_COUNTERS = "counters"
MAP_ACTIONS = "slot_actions"
MAP_RULES = "rules"
MAP_EVENTS = "events"
MAP_CONFIG = ".bss"
PIN_CONFIG = "config"
# Always attached: program -> link pin.
PROGS = (("saga_sys_exit", "link_sys_exit"), ("saga_task_exit", "link_task_exit"),
         ("saga_sigreturn", "link_sigreturn"))
# Attached only while the rule set can log (entry state costs a second program per call).
ENTER_PROG, ENTER_PROG_PIN, ENTER_LINK_PIN = "saga_sys_enter", "prog_sys_enter", "link_sys_enter"
VALUE_SIZES = {MAP_CONFIG: CONFIG.size, MAP_COUNTERS: PCPU_SIZE, MAP_ACTIONS: ACTIONS_SIZE}
