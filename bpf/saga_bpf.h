/* SPDX-License-Identifier: GPL-2.0 */
/*
 * saga eBPF driver: the layouts shared by the BPF program (saga.bpf.c) and
 * its Python loader.  src/saga/drivers/ebpf/_layout.py is generated from
 * this header by tools/gen_uapi.py (sizes and offsets computed by the C
 * compiler), and the loader checks each map's value size against it.
 *
 * Records, rules and counters use the uapi structs of the kernel module
 * (linux/saga.h) unchanged; only the driver's own state is defined here.
 */
#ifndef SAGA_BPF_H
#define SAGA_BPF_H

#include <linux/saga.h>

/* Reader processes excluded from logging (their calls are still counted). */
#define SAGA_BPF_MAX_CONSUMERS	8
#define SAGA_BPF_VERSION_LEN	32

/*
 * Global state, in the program's .bss map (mmapped read-write by user
 * space).  Fields the probes read are written by user space with single
 * aligned stores (never byte by byte), so a probe never sees a torn value.
 */
struct saga_bpf_config {
	__u32	enabled;		/* 0: the probes return at once */
	__u32	actions;		/* entry of slot_actions in force (0 or 1) */
	__s64	realtime_offset;	/* CLOCK_REALTIME - CLOCK_MONOTONIC in ns, kept by user space */
	__u64	wake_bytes;		/* wake readers once this many bytes wait in the ring */
	__u64	read;			/* records handed to readers (added by user space) */
	__u64	reset_ns;		/* CLOCK_REALTIME of the last reset or load */
	__u32	ring_bytes;		/* size of the ring buffer */
	__u32	default_action;		/* SAGA_ACT_* the rule sets are built with */
	__u32	locked;			/* 1 once the rule maps are frozen */
	__u32	__pad;
	__u32	consumers[SAGA_BPF_MAX_CONSUMERS];	/* reader tgids; 0 = free */
	char	version[SAGA_BPF_VERSION_LEN];		/* saga version that loaded the program */
};

/* Per-CPU counters: one value per CPU, summed by user space. */
struct saga_bpf_pcpu {
	struct saga_counter slot[SAGA_NR_SLOTS];
	__u64	events;			/* records written to the ring */
	__u64	drops;			/* records lost: ring full */
	__u64	no_enter;		/* records without entry state */
	__u64	path_faults;		/* path arguments that could not be read */
	__u64	aux_faults;		/* aux blobs cut short: user memory could not be read */
	__u64	tree_drops;		/* descendants not marked for a tree rule (no room) */
};

/*
 * A rule set is published as two structures, each in entry 0 or 1 of its
 * map; config.actions names the entry in force for both:
 *
 * - struct saga_bpf_actions (map slot_actions), read on every call: one
 *   byte per slot, a SAGA_ACT_*, or SAGA_BPF_ACT_WALK when a rule with
 *   fields covers the slot before a field-less rule does; and the id of
 *   the rule that decided the byte (0: the default action), read only
 *   when the call is logged.
 *
 * - struct saga_bpf_ruleset, the whole list, the value of an inner array
 *   map held by entry 0 or 1 of the outer map `rules`; only walking slots
 *   and forks (when the list has tree rules) look at it.  Its own slot[n]
 *   is SAGA_BPF_SLOT_WALK | the index of the first rule covering n (or a
 *   plain action): the probe walks the list from there, first match wins,
 *   default_action when none does.
 *
 * User space fills the spare entry of both maps and then switches
 * config.actions with one store, so a probe applies either the old set or
 * the new one, never a mix.  The spare entry is rewritten only after an
 * RCU grace period (docs/ebpf.md, "Rule changes").
 */
#define SAGA_BPF_SLOT_WALK	0x8000
#define SAGA_BPF_SLOT_INDEX	0x03ff
#define SAGA_BPF_ACT_WALK	0x80

struct saga_bpf_actions {
	__u8	slot[SAGA_NR_SLOTS];
	__u32	rule[SAGA_NR_SLOTS];	/* id of the rule that decided slot[n]; 0: the default action */
};

struct saga_bpf_ruleset {
	__u64	generation;		/* bumped by every change */
	__u32	nr_rules;
	__u32	default_action;
	__u32	any_log;		/* 1 if some call may be logged: entry state is kept */
	__u32	nr_tree;		/* rules with SAGA_MATCH_TREE: forks have work */
	__u16	slot[SAGA_NR_SLOTS];
	struct saga_rule rules[SAGA_MAX_RULES];
};

/* The tree rules a task descends in (task local storage, made at fork). */
struct saga_bpf_marks {
	__u32	ids[SAGA_TREE_MARKS];	/* rule ids; 0 = free */
};

/*
 * State kept per task between sys_enter and sys_exit of a call that may be
 * logged (task local storage), and the per-CPU scratch record for calls
 * logged without it.  ev is followed directly by the paths and the aux
 * blob, so the whole record goes to the ring in one copy.  Each read has
 * one byte more room than it may keep (a path of SAGA_PATH_MAX - 1 bytes
 * is told from a longer one, a string that fits from one that does not);
 * the aux area sits at a variable offset after the paths, and the buffer
 * is sized for the largest offset plus the largest read.
 */
#define SAGA_BPF_PATH_READ	(SAGA_PATH_MAX + 1)
#define SAGA_BPF_AUX_AT		(2 * SAGA_PATH_MAX)	/* the aux area starts by here */
#define SAGA_BPF_DATA_BUF	(SAGA_BPF_AUX_AT + 2 * SAGA_AUX_MAX + 16)

struct saga_bpf_entry {
	__u64	mono_ns;		/* CLOCK_MONOTONIC at entry */
	__u32	valid;			/* 1 from entry until exit */
	__u32	aux_room;		/* aux read at exit: the address buffer's length at entry */
	struct saga_event ev;
	char	data[SAGA_BPF_DATA_BUF];
};

#endif /* SAGA_BPF_H */
