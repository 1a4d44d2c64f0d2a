/* SPDX-License-Identifier: GPL-2.0 */
/*
 * saga: syscall logging.  Declarations shared by the module's files.
 *
 *   saga_main.c   load/unload, module parameters
 *   saga_probe.c  the sys_enter/sys_exit probes: decide, count, record
 *   saga_rules.c  the compiled, RCU-published rule set
 *   saga_tree.c   the marks of tree rules, made at fork
 *   saga_entry.c  per-task entry state between sys_enter and sys_exit
 *   saga_ring.c   per-CPU event rings, readers and wake-ups
 *   saga_dev.c    /dev/saga: open/read/poll and one handler per ioctl
 *   saga_proc.c   /proc/saga/{status,stats,rules}
 */
#ifndef SAGA_H
#define SAGA_H

#include <linux/types.h>
#include <linux/percpu.h>
#include <linux/rcupdate.h>
#include <linux/mutex.h>
#include <linux/wait.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <uapi/linux/saga.h>

#include "saga_compat.h"

/* Written by tools/gen_uapi.py from src/saga/__init__.py (`make uapi`). */
#define SAGA_VERSION		"0.1.0"

/* ---- module parameters and global state (saga_main.c) ---------------- */
extern unsigned int saga_ring_bytes;	/* per CPU, a power of two */
extern unsigned int saga_entries;	/* entry table slots, a power of two */
extern unsigned int saga_tree_tasks;	/* mark table slots, a power of two */
extern int saga_default_action;
extern bool saga_enabled;		/* read by the probes */
extern bool saga_locked;
extern u64 saga_reset_ns;
extern struct mutex saga_ctl_mutex;	/* serialises every state change */

/* ---- counters (saga_probe.c) ------------------------------------------ */
struct saga_cpu_stats {
	u64 calls[SAGA_NR_SLOTS];
	u64 errors[SAGA_NR_SLOTS];
	u64 events;		/* records written */
	u64 drops;		/* records lost to a full ring */
	u64 no_enter;		/* records without entry state */
	u64 path_faults;	/* path arguments that could not be read */
	u64 aux_faults;		/* aux blobs cut short: user memory could not be read */
	u64 tree_drops;		/* descendants not marked for a tree rule: no room */
};
extern struct saga_cpu_stats __percpu *saga_stats;
extern atomic64_t saga_read_events;	/* records handed to readers */

struct saga_totals {
	u64 calls, errors, events, drops, no_enter, path_faults, aux_faults, tree_drops;
};
void saga_stats_sum(struct saga_totals *t);
void saga_stats_slot(unsigned int slot, u64 *calls, u64 *errors);
void saga_stats_reset(void);

int saga_probes_register(void);
void saga_probes_unregister(void);
int saga_set_enabled(bool on);	/* under saga_ctl_mutex */

/* ---- rules (saga_rules.c) --------------------------------------------- */
#define SAGA_FAST_SLOW	0xff	/* fast[] value: walk the list */

struct saga_ruleset {
	struct rcu_head rcu;
	u64 generation;
	unsigned int count;
	unsigned int nr_tree;		/* rules with SAGA_MATCH_TREE: forks have work */
	bool enter_active;		/* some slot may be logged: sys_enter has work */
	u8 fast[SAGA_NR_SLOTS];	/* SAGA_ACT_* or SAGA_FAST_SLOW */
	u32 fast_id[SAGA_NR_SLOTS];	/* id of the rule that decided fast[n] (0: the default action) */
	struct saga_rule rules[];	/* in order */
};
extern struct saga_ruleset __rcu *saga_rules;

int saga_rules_init(void);
void saga_rules_exit(void);
/* The state change handler; caller holds saga_ctl_mutex. */
int saga_rules_replace(struct saga_rule *rules, unsigned int n);
struct saga_ruleset *saga_rules_current(void);	/* under saga_ctl_mutex */

/*
 * Action for a call, decided separately for a call that succeeds and one
 * that fails (an `errors` rule decides only the latter), with the id of the
 * rule that decided each (0: the default action).
 */
struct saga_verdict {
	u8 ok;		/* action if the call succeeds */
	u8 err;		/* action if it fails */
	u32 ok_id;
	u32 err_id;
};
struct saga_verdict saga_rules_walk(const struct saga_ruleset *rs, unsigned int slot,
				    struct task_struct *task);
/* The rule's process fields (pid, uid, comm, exe) hold for the task. */
bool saga_rule_process_fields(const struct saga_rule *r, struct task_struct *task);
void saga_rule_show(struct seq_file *m, const struct saga_rule *r);
const char *saga_action_name(unsigned int act);

/* ---- tree marks (saga_tree.c) ----------------------------------------- */
int saga_tree_init(void);
void saga_tree_exit(void);
/* In the parent, before the child runs: mark the child (rule set read under RCU). */
void saga_tree_fork(const struct saga_ruleset *rs, struct task_struct *parent, struct task_struct *child);
void saga_tree_free(struct task_struct *task);
bool saga_tree_marked(struct task_struct *task, u32 id);
unsigned int saga_tree_used(void);

/* ---- entry state (saga_entry.c) --------------------------------------- */
struct saga_entry {
	struct task_struct *task;	/* owner; NULL free; SAGA_ENTRY_BUSY claimed */
	u64 start_time;			/* the owner's, against pointer reuse */
	u64 ts_ns;
	u64 mono_ns;			/* for the duration */
	u64 args[6];
	u16 slot;
	u16 flags;			/* SAGA_EVF_PATH_*, SAGA_EVF_AUX_* and the aux kind */
	u16 path_len[SAGA_NR_PATHS];	/* NUL included; 0: none */
	u16 aux_len;
	u32 aux_room;			/* aux read at exit: the address buffer's length at entry (0: none) */
	char path[SAGA_NR_PATHS][SAGA_PATH_MAX + 1];	/* +1: tells a 255-byte path from a longer one */
	char aux[SAGA_AUX_MAX + 1];	/* +1: tells an argv string that fits from one that does not */
};

int saga_entries_init(void);
void saga_entries_exit(void);
void saga_entries_clear(void);	/* only while no probe can run */
struct saga_entry *saga_entry_claim(struct task_struct *task);
void saga_entry_publish(struct saga_entry *e, struct task_struct *task);
struct saga_entry *saga_entry_take(struct task_struct *task);
void saga_entry_release(struct saga_entry *e);
unsigned int saga_entries_used(void);

/* ---- rings and readers (saga_ring.c) ---------------------------------- */
int saga_rings_init(void);
void saga_rings_exit(void);		/* after the probes are gone */
/*
 * Probe side: saga_ring_begin() before taking the record's timestamp (read()
 * merges the rings by it), then saga_ring_write() always: it copies @size
 * bytes into this CPU's ring, false when it has no room (the caller counts
 * the drop).
 */
void saga_ring_begin(void);
bool saga_ring_write(const void *rec, unsigned int size);
ssize_t saga_rings_read(char __user *buf, size_t count, bool nonblock);
__poll_t saga_rings_poll(struct file *file, struct poll_table_struct *wait);
u64 saga_rings_used(void);

#define SAGA_MAX_READERS	16
extern u32 saga_reader_tgid[SAGA_MAX_READERS];
int saga_reader_add(u32 tgid);
void saga_reader_del(u32 tgid);
unsigned int saga_readers(void);

static inline bool saga_is_reader(u32 tgid)
{
	int i;

	for (i = 0; i < SAGA_MAX_READERS; i++)
		if (READ_ONCE(saga_reader_tgid[i]) == tgid)
			return true;
	return false;
}

/* ---- device and proc (saga_dev.c, saga_proc.c) ------------------------ */
int saga_dev_init(void);
void saga_dev_exit(void);
int saga_proc_init(void);
void saga_proc_exit(void);

#endif /* SAGA_H */
