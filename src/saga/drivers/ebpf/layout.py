"""The eBPF driver's map layouts, by name: a view of _layout.py, which
tools/gen_uapi.py generates from bpf/saga_bpf.h (sizes and offsets from
the C compiler).  The loader also compares every value size here with the
one libbpf reports for the built object, so a stale object fails loudly.
"""
from __future__ import annotations

from saga import _uapi
from saga.drivers.ebpf import _layout as G

MAX_CONSUMERS = G.SAGA_BPF_MAX_CONSUMERS
VERSION_LEN = G.SAGA_BPF_VERSION_LEN

# struct saga_bpf_config (the .bss map)
CONFIG = G.SAGA_BPF_CONFIG
CFG_ENABLED = CONFIG.offset("enabled")
CFG_ACTIONS = CONFIG.offset("actions")
CFG_REALTIME_OFFSET = CONFIG.offset("realtime_offset")
CFG_WAKE_BYTES = CONFIG.offset("wake_bytes")
CFG_READ = CONFIG.offset("read")
CFG_RESET_NS = CONFIG.offset("reset_ns")
CFG_RING_BYTES = CONFIG.offset("ring_bytes")
CFG_DEFAULT_ACTION = CONFIG.offset("default_action")
CFG_LOCKED = CONFIG.offset("locked")
CFG_CONSUMERS = CONFIG.offset("consumers")
CFG_VERSION = CONFIG.offset("version")

# struct saga_bpf_pcpu: SAGA_NR_SLOTS x (calls, errors), then the totals, in this order.
PCPU = G.SAGA_BPF_PCPU
PCPU_SIZE = PCPU.size
PCPU_TOTALS = tuple(f.name for f in PCPU.fields if f.name != "slot")
PCPU_TOTALS_OFF = PCPU.offset(PCPU_TOTALS[0])

# struct saga_bpf_actions: one byte per slot, SAGA_ACT_* or ACT_WALK, then the deciding rule ids
ACT_WALK = G.SAGA_BPF_ACT_WALK
ACTIONS = G.SAGA_BPF_ACTIONS
ACTIONS_SIZE = ACTIONS.size

# struct saga_bpf_ruleset
RULESET = G.SAGA_BPF_RULESET
RULESET_SIZE = RULESET.size
RS_RULES_OFF = RULESET.offset("rules")
RULE = _uapi.SAGA_RULE
SLOT_WALK = G.SAGA_BPF_SLOT_WALK
SLOT_INDEX = G.SAGA_BPF_SLOT_INDEX

# Map names in the object, as pinned (pin name = map name).
MAP_COUNTERS = "counters"
MAP_ACTIONS = "slot_actions"
MAP_RULES = "rules"
MAP_EVENTS = "events"
MAP_CONFIG = ".bss"
PIN_CONFIG = "config"
# Always attached: program -> link pin.
PROGS = (("saga_sys_exit", "link_sys_exit"), ("saga_task_exit", "link_task_exit"),
         ("saga_sigreturn", "link_sigreturn"), ("saga_fork", "link_fork"))
# Attached only while the rule set can log (entry state costs a second program per call).
ENTER_PROG, ENTER_PROG_PIN, ENTER_LINK_PIN = "saga_sys_enter", "prog_sys_enter", "link_sys_enter"
VALUE_SIZES = {MAP_CONFIG: CONFIG.size, MAP_COUNTERS: PCPU_SIZE, MAP_ACTIONS: ACTIONS_SIZE}
