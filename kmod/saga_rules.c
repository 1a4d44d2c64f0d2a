// SPDX-License-Identifier: GPL-2.0
/*
 * saga: the rule set.
 *
 * Rules live in an immutable struct saga_ruleset published with RCU: every
 * change (add, delete, clear, replace) builds a new set under
 * saga_ctl_mutex, swaps the pointer and frees the old set after a grace
 * period, so a probe sees either the old list or the new one, never half.
 *
 * fast[slot] caches the decision for slots where the first rule that
 * names the slot uses no field but the syscall set (or no rule names it:
 * the default action), so those calls cost one table lookup.  Other slots
 * hold SAGA_FAST_SLOW and the probe walks the list.
 */
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/cred.h>
#include <linux/uidgid.h>
#include <linux/user_namespace.h>

#include "saga.h"

struct saga_ruleset __rcu *saga_rules;
static u64 saga_generation;
static u32 saga_next_id = 1;

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
 * Fill fast[] and positions.  Each rule decides the slots it names that
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
	for (i = 0; i < rs->count; i++)
		rs->rules[i].position = i;
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
				fresh &= fresh - 1;
			}
		}
	}
	rs->enter_active = memchr(rs->fast, SAGA_ACT_LOG, sizeof(rs->fast)) ||
			   memchr(rs->fast, SAGA_FAST_SLOW, sizeof(rs->fast));
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

static int rule_find(const struct saga_ruleset *rs, u32 id)
{
	unsigned int i;

	for (i = 0; i < rs->count; i++)
		if (rs->rules[i].id == id)
			return i;
	return -1;
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

/* Validate a rule from user space (position and id are checked by callers). */
int saga_rule_check(const struct saga_rule *r)
{
	if (r->__pad || r->action > SAGA_ACT_MAX || (r->match & ~SAGA_MATCH_ALL))
		return -EINVAL;
	if (!(r->match & SAGA_MATCH_PID) && r->pid)
		return -EINVAL;
	if (!(r->match & SAGA_MATCH_UID) && r->uid)
		return -EINVAL;
	if (!(r->match & SAGA_MATCH_COMM) && r->comm[0])
		return -EINVAL;
	if (!padded_string_ok(r->comm, sizeof(r->comm), r->match & SAGA_MATCH_COMM))
		return -EINVAL;
	if (!padded_string_ok(r->key, sizeof(r->key), false))
		return -EINVAL;
	if (bitmap_empty_words(r->syscalls))
		return -EINVAL;
	return 0;
}

static u32 take_id(u32 wanted)
{
	if (!wanted)
		wanted = saga_next_id;
	if (wanted >= saga_next_id)
		saga_next_id = wanted + 1;
	if (!saga_next_id)	/* wrapped: ids restart, duplicates are still refused */
		saga_next_id = 1;
	return wanted;
}

int saga_rule_add(struct saga_rule *r)
{
	struct saga_ruleset *old = saga_rules_current(), *rs;
	unsigned int pos = r->position;
	int err = saga_rule_check(r);

	if (err)
		return err;
	if (pos == SAGA_POS_END)
		pos = old->count;
	if (pos > old->count)
		return -EINVAL;
	if (r->id && rule_find(old, r->id) >= 0)
		return -EEXIST;
	if (old->count >= SAGA_MAX_RULES)
		return -ENOSPC;
	while (!r->id) {	/* a picked id can collide with one given explicitly */
		r->id = take_id(0);
		if (rule_find(old, r->id) >= 0)
			r->id = 0;
	}
	take_id(r->id);

	rs = ruleset_alloc(old->count + 1);
	if (!rs)
		return -ENOMEM;
	memcpy(rs->rules, old->rules, pos * sizeof(*r));
	rs->rules[pos] = *r;
	memcpy(rs->rules + pos + 1, old->rules + pos, (old->count - pos) * sizeof(*r));
	ruleset_publish(rs);
	r->position = pos;
	return 0;
}

int saga_rule_del(struct saga_rule_del *d)
{
	struct saga_ruleset *old = saga_rules_current(), *rs;
	bool by_key = d->flags & SAGA_DEL_BY_KEY;
	unsigned int i, n = 0;

	if (d->__pad || (d->flags & ~SAGA_DEL_BY_KEY))
		return -EINVAL;
	if (!padded_string_ok(d->key, sizeof(d->key), by_key))
		return -EINVAL;
	if (by_key ? d->id != 0 : d->key[0] != 0)
		return -EINVAL;
	if (!by_key && rule_find(old, d->id) < 0)
		return -ENOENT;

	rs = ruleset_alloc(old->count);
	if (!rs)
		return -ENOMEM;
	for (i = 0; i < old->count; i++) {
		const struct saga_rule *r = &old->rules[i];
		bool gone = by_key ? !strncmp(r->key, d->key, sizeof(d->key)) : r->id == d->id;

		if (!gone)
			rs->rules[n++] = *r;
	}
	d->removed = old->count - n;
	if (!d->removed) {
		kvfree(rs);
		return 0;
	}
	rs->count = n;
	ruleset_publish(rs);
	return 0;
}

int saga_rules_clear(void)
{
	struct saga_ruleset *rs = ruleset_alloc(0);

	if (!rs)
		return -ENOMEM;
	ruleset_publish(rs);
	return 0;
}

/* Install exactly these rules (ids kept or picked), in one step. */
int saga_rules_replace(struct saga_rule *rules, unsigned int n)
{
	struct saga_ruleset *rs;
	unsigned int i, j;
	int err;

	if (n > SAGA_MAX_RULES)
		return -ENOSPC;
	for (i = 0; i < n; i++) {
		err = saga_rule_check(&rules[i]);
		if (err)
			return err;
		for (j = 0; j < i; j++)
			if (rules[i].id && rules[j].id == rules[i].id)
				return -EEXIST;
	}
	rs = ruleset_alloc(n);
	if (!rs)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		if (rules[i].id)
			take_id(rules[i].id);
	for (i = 0; i < n; i++) {
		struct saga_rule *r = &rules[i];

		while (!r->id) {
			r->id = take_id(0);
			for (j = 0; j < n; j++)
				if (j != i && rules[j].id == r->id)
					r->id = 0;
		}
		rs->rules[i] = *r;
	}
	ruleset_publish(rs);
	return 0;
}

static bool rule_fields_match(const struct saga_rule *r, struct task_struct *task)
{
	if ((r->match & SAGA_MATCH_PID) && task->tgid != r->pid)
		return false;
	if ((r->match & SAGA_MATCH_UID) &&
	    from_kuid_munged(&init_user_ns, task_cred_xxx(task, uid)) != r->uid)
		return false;
	if ((r->match & SAGA_MATCH_COMM) && strncmp(task->comm, r->comm, SAGA_COMM_LEN - 1))
		return false;
	return true;
}

/*
 * The slow path: first match wins, decided separately for a call that
 * succeeds and one that fails (an `errors` rule decides only the latter).
 */
struct saga_verdict saga_rules_walk(const struct saga_ruleset *rs, unsigned int slot,
				    struct task_struct *task)
{
	struct saga_verdict v = { SAGA_FAST_SLOW, SAGA_FAST_SLOW };
	unsigned int i;

	for (i = 0; i < rs->count; i++) {
		const struct saga_rule *r = &rs->rules[i];

		if (!rule_has_slot(r, slot) || !rule_fields_match(r, task))
			continue;
		if (v.err == SAGA_FAST_SLOW)
			v.err = r->action;
		if (!(r->match & SAGA_MATCH_ERRORS)) {
			if (v.ok == SAGA_FAST_SLOW)
				v.ok = r->action;
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
