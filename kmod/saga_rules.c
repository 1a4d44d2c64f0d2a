// SPDX-License-Identifier: GPL-2.0
/*
 * saga: the rule set.
 *
 * Rules live in an immutable struct saga_ruleset published with RCU: a
 * change (RULE_REPLACE: the whole list, ids chosen by user space) builds a
 * new set under saga_ctl_mutex, swaps the pointer and frees the old set
 * after a grace period, so a probe sees either the old list or the new
 * one, never half.
 *
 * fast[slot] caches the decision for slots where the first rule that
 * names the slot uses no field but the syscall set (or no rule names it:
 * the default action), so those calls cost one table lookup; fast_id[slot]
 * names the rule, for the records it logs.  Other slots hold
 * SAGA_FAST_SLOW and the probe walks the list; so do the fork slots, whose
 * child side sys_exit must recognise (saga_probe.c).
 */
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/cred.h>
#include <linux/uidgid.h>
#include <linux/user_namespace.h>
#include <linux/fs.h>
#include <linux/mm_types.h>

#include "saga.h"
#include "saga_syscalls.h"

struct saga_ruleset __rcu *saga_rules;
static u64 saga_generation;

static const char *const saga_actions[] = {
	[SAGA_ACT_LOG] = "log",
	[SAGA_ACT_COUNT] = "count",
	[SAGA_ACT_IGNORE] = "ignore",
};

const char *saga_action_name(unsigned int act)
{
	return act <= SAGA_ACT_MAX ? saga_actions[act] : "?";
}

static inline bool rule_has_slot(const struct saga_rule *r, unsigned int slot)
{
	return r->syscalls[slot / 64] & (1ULL << (slot % 64));
}

struct saga_ruleset *saga_rules_current(void)
{
	return rcu_dereference_protected(saga_rules, lockdep_is_held(&saga_ctl_mutex));
}

static struct saga_ruleset *ruleset_alloc(unsigned int n)
{
	struct saga_ruleset *rs = kvzalloc(struct_size(rs, rules, n), GFP_KERNEL);

	if (rs)
		rs->count = n;
	return rs;
}

/*
 * Fill fast[] and fast_id[].  Each rule decides the slots it names that
 * no earlier rule named; the walk stops once every slot is decided, so a
 * compile costs O(rules x words), not O(rules x slots).
 */
static void ruleset_compile(struct saga_ruleset *rs)
{
	u64 open[SAGA_SYSCALL_WORDS];
	unsigned int i, w;
	bool any = true;

	memset(open, 0xff, sizeof(open));
	memset(rs->fast, saga_default_action, sizeof(rs->fast));
	memset(rs->fast_id, 0, sizeof(rs->fast_id));
	rs->nr_tree = 0;
	for (i = 0; i < rs->count; i++)
		rs->nr_tree += !!(rs->rules[i].match & SAGA_MATCH_TREE);
	for (i = 0; i < rs->count && any; i++) {
		const struct saga_rule *r = &rs->rules[i];
		u8 act = r->match ? SAGA_FAST_SLOW : r->action;

		any = false;
		for (w = 0; w < SAGA_SYSCALL_WORDS; w++) {
			u64 fresh = r->syscalls[w] & open[w];

			open[w] &= ~r->syscalls[w];
			any |= open[w] != 0;
			while (fresh) {
				unsigned int b = __ffs64(fresh);

				rs->fast[w * 64 + b] = act;
				rs->fast_id[w * 64 + b] = r->match ? 0 : r->id;
				fresh &= fresh - 1;
			}
		}
	}
	rs->enter_active = memchr(rs->fast, SAGA_ACT_LOG, sizeof(rs->fast)) ||
			   memchr(rs->fast, SAGA_FAST_SLOW, sizeof(rs->fast));
	/* After enter_active: the fork slots walk only so that sys_exit sees their child side. */
	for (i = 0; i < SAGA_NR_SLOTS; i++)
		if (saga_fork_slot(i))
			rs->fast[i] = SAGA_FAST_SLOW;
	rs->generation = ++saga_generation;
}

static void ruleset_publish(struct saga_ruleset *rs)
{
	struct saga_ruleset *old = saga_rules_current();

	ruleset_compile(rs);
	rcu_assign_pointer(saga_rules, rs);
	/*
	 * A probe reads the set inside a preemption-disabled section on every
	 * kernel (saga_probe.c says why): an ordinary RCU grace period waits
	 * for it, including on 6.14+ where the tracepoint itself only holds
	 * tasks-trace RCU.
	 */
	if (old)
		kvfree_rcu(old, rcu);
}

/* A NUL-terminated string whose bytes after the terminator are all zero. */
static bool padded_string_ok(const char *s, size_t size, bool nonempty)
{
	size_t n = strnlen(s, size);

	if (n == size || (nonempty && n == 0))
		return false;
	for (; n < size; n++)
		if (s[n])
			return false;
	return true;
}

static bool bitmap_empty_words(const u64 *w)
{
	unsigned int i;

	for (i = 0; i < SAGA_SYSCALL_WORDS; i++)
		if (w[i])
			return false;
	return true;
}

/* Validate a rule from user space (docs/kernel-abi.md, "Validation"). */
static int rule_check(const struct saga_rule *r)
{
	if (r->__pad || !r->id || r->action > SAGA_ACT_MAX || (r->match & ~SAGA_MATCH_ALL))
		return -EINVAL;
	if (!(r->match & SAGA_MATCH_PID) && r->pid)
		return -EINVAL;
	if (!(r->match & SAGA_MATCH_UID) && r->uid)
		return -EINVAL;
	if (!(r->match & SAGA_MATCH_COMM) && r->comm[0])
		return -EINVAL;
	if (r->match & SAGA_MATCH_EXE ? !r->exe_ino : r->exe_ino || r->exe_dev)
		return -EINVAL;
	if ((r->match & SAGA_MATCH_TREE) && !(r->match & SAGA_MATCH_PROCESS))
		return -EINVAL;
	if (!padded_string_ok(r->comm, sizeof(r->comm), r->match & SAGA_MATCH_COMM))
		return -EINVAL;
	if (!padded_string_ok(r->key, sizeof(r->key), false))
		return -EINVAL;
	if (bitmap_empty_words(r->syscalls))
		return -EINVAL;
	return 0;
}

/* Install exactly these rules, in one step (ids are the caller's: nonzero, unique). */
int saga_rules_replace(struct saga_rule *rules, unsigned int n)
{
	struct saga_ruleset *rs;
	unsigned int i, j;
	int err;

	if (n > SAGA_MAX_RULES)
		return -ENOSPC;
	for (i = 0; i < n; i++) {
		err = rule_check(&rules[i]);
		if (err)
			return err;
		for (j = 0; j < i; j++)
			if (rules[j].id == rules[i].id)
				return -EEXIST;
	}
	rs = ruleset_alloc(n);
	if (!rs)
		return -ENOMEM;
	memcpy(rs->rules, rules, n * sizeof(*rules));
	ruleset_publish(rs);
	return 0;
}

/* The task's executable is inode @ino on the superblock of device @dev (mm->exe_file, under RCU). */
static bool task_exe_is(struct task_struct *task, u32 dev, u64 ino)
{
	struct mm_struct *mm = task->mm;
	struct file *exe;
	bool same = false;

	if (!mm)
		return false;
	rcu_read_lock();
	exe = rcu_dereference(mm->exe_file);
	if (exe) {
		struct inode *inode = file_inode(exe);

		same = inode->i_ino == ino && inode->i_sb->s_dev == dev;
	}
	rcu_read_unlock();
	return same;
}

bool saga_rule_process_fields(const struct saga_rule *r, struct task_struct *task)
{
	if ((r->match & SAGA_MATCH_PID) && task->tgid != r->pid)
		return false;
	if ((r->match & SAGA_MATCH_UID) &&
	    from_kuid_munged(&init_user_ns, task_cred_xxx(task, uid)) != r->uid)
		return false;
	if ((r->match & SAGA_MATCH_COMM) && strncmp(task->comm, r->comm, SAGA_COMM_LEN - 1))
		return false;
	if ((r->match & SAGA_MATCH_EXE) && !task_exe_is(task, r->exe_dev, r->exe_ino))
		return false;
	return true;
}

/* The process part of a rule: its fields, or for a tree rule the task's mark. */
static bool rule_process_matches(const struct saga_rule *r, struct task_struct *task)
{
	if (!(r->match & SAGA_MATCH_PROCESS) || saga_rule_process_fields(r, task))
		return true;
	return (r->match & SAGA_MATCH_TREE) && saga_tree_marked(task, r->id);
}

/*
 * The slow path: first match wins, decided separately for a call that
 * succeeds and one that fails (an `errors` rule decides only the latter).
 */
struct saga_verdict saga_rules_walk(const struct saga_ruleset *rs, unsigned int slot,
				    struct task_struct *task)
{
	struct saga_verdict v = { SAGA_FAST_SLOW, SAGA_FAST_SLOW, 0, 0 };
	unsigned int i;

	for (i = 0; i < rs->count; i++) {
		const struct saga_rule *r = &rs->rules[i];

		if (!rule_has_slot(r, slot) || !rule_process_matches(r, task))
			continue;
		if (v.err == SAGA_FAST_SLOW) {
			v.err = r->action;
			v.err_id = r->id;
		}
		if (!(r->match & SAGA_MATCH_ERRORS)) {
			if (v.ok == SAGA_FAST_SLOW) {
				v.ok = r->action;
				v.ok_id = r->id;
			}
			return v;
		}
	}
	if (v.ok == SAGA_FAST_SLOW)
		v.ok = saga_default_action;
	if (v.err == SAGA_FAST_SLOW)
		v.err = saga_default_action;
	return v;
}

int saga_rules_init(void)
{
	struct saga_ruleset *rs = ruleset_alloc(0);

	if (!rs)
		return -ENOMEM;
	mutex_lock(&saga_ctl_mutex);
	ruleset_publish(rs);
	mutex_unlock(&saga_ctl_mutex);
	return 0;
}

void saga_rules_exit(void)
{
	/* The probes are gone (tracepoint_synchronize_unregister): free now. */
	kvfree(rcu_dereference_protected(saga_rules, 1));
	RCU_INIT_POINTER(saga_rules, NULL);
}
