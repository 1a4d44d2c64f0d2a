// SPDX-License-Identifier: GPL-2.0
/*
 * saga: /proc/saga/status, /proc/saga/stats and /proc/saga/rules.
 * Formats are documented in docs/proc.md and only ever extended.
 */
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/cpumask.h>
#include <linux/kdev_t.h>

#include "saga.h"
#define SAGA_WANT_SLOT_NAMES
#include "saga_syscalls.h"

static struct proc_dir_entry *saga_proc_dir;

static int status_show(struct seq_file *m, void *v)
{
	struct saga_totals t;
	unsigned int nr_rules;
	bool locked;

	mutex_lock(&saga_ctl_mutex);
	nr_rules = saga_rules_current()->count;
	locked = saga_locked;
	mutex_unlock(&saga_ctl_mutex);
	saga_stats_sum(&t);

	seq_printf(m, "version: %s\n", SAGA_VERSION);
	seq_printf(m, "abi_version: %u\n", SAGA_ABI_VERSION);
	seq_printf(m, "enabled: %d\n", READ_ONCE(saga_enabled));
	seq_printf(m, "locked: %d\n", locked);
	seq_printf(m, "rules: %u\n", nr_rules);
	seq_printf(m, "default_action: %s\n", saga_action_name(saga_default_action));
	seq_printf(m, "cpus: %u\n", num_possible_cpus());
	seq_printf(m, "ring_bytes: %u\n", saga_ring_bytes);
	seq_printf(m, "ring_used: %llu\n", saga_rings_used());
	seq_printf(m, "entries: %u\n", saga_entries);
	seq_printf(m, "entries_used: %u\n", saga_entries_used());
	seq_printf(m, "readers: %u\n", saga_readers());
	seq_printf(m, "calls: %llu\n", t.calls);
	seq_printf(m, "errors: %llu\n", t.errors);
	seq_printf(m, "events: %llu\n", t.events);
	seq_printf(m, "drops: %llu\n", t.drops);
	seq_printf(m, "read: %llu\n", (u64)atomic64_read(&saga_read_events));
	seq_printf(m, "no_enter: %llu\n", t.no_enter);
	seq_printf(m, "path_faults: %llu\n", t.path_faults);
	seq_printf(m, "reset_ns: %llu\n", READ_ONCE(saga_reset_ns));
	seq_printf(m, "aux_faults: %llu\n", t.aux_faults);
	seq_printf(m, "tree_tasks: %u\n", saga_tree_tasks);
	seq_printf(m, "tree_used: %u\n", saga_tree_used());
	seq_printf(m, "tree_drops: %llu\n", t.tree_drops);
	return 0;
}

static void put_slot_name(struct seq_file *m, unsigned int slot)
{
	if (saga_slot_names[slot])
		seq_puts(m, saga_slot_names[slot]);
	else
		seq_printf(m, "syscall_%u", slot);
}

/* stats: a header, then "NAME CALLS ERRORS" for each slot with calls. */
static void *stats_start(struct seq_file *m, loff_t *pos)
{
	return *pos <= SAGA_NR_SLOTS ? pos : NULL;
}

static void *stats_next(struct seq_file *m, void *v, loff_t *pos)
{
	++*pos;
	return stats_start(m, pos);
}

static void stats_stop(struct seq_file *m, void *v)
{
}

static int stats_show(struct seq_file *m, void *v)
{
	loff_t pos = *(loff_t *)v;
	u64 calls, errors;

	if (pos == 0) {
		seq_puts(m, "syscall calls errors\n");
		return 0;
	}
	saga_stats_slot(pos - 1, &calls, &errors);
	if (calls || errors) {
		put_slot_name(m, pos - 1);
		seq_printf(m, " %llu %llu\n", calls, errors);
	}
	return 0;
}

static const struct seq_operations stats_ops = {
	.start = stats_start,
	.next = stats_next,
	.stop = stats_stop,
	.show = stats_show,
};

/* rules: "ID: RULE" in the grammar of docs/rules.md, in order. */
static void *rules_start(struct seq_file *m, loff_t *pos)
{
	mutex_lock(&saga_ctl_mutex);
	return *pos < saga_rules_current()->count ? &saga_rules_current()->rules[*pos] : NULL;
}

static void *rules_next(struct seq_file *m, void *v, loff_t *pos)
{
	++*pos;
	return *pos < saga_rules_current()->count ? &saga_rules_current()->rules[*pos] : NULL;
}

static void rules_stop(struct seq_file *m, void *v)
{
	mutex_unlock(&saga_ctl_mutex);
}

/* Quote like a POSIX shell (and Python's shlex.quote) unless plainly safe. */
static void put_word(struct seq_file *m, const char *s)
{
	const char *p;

	for (p = s; *p; p++)
		if (!isalnum(*p) && !strchr("_.:@+/%-", *p))
			break;
	if (*s && !*p) {
		seq_puts(m, s);
		return;
	}
	seq_putc(m, '\'');
	for (p = s; *p; p++) {
		if (*p == '\'')
			seq_puts(m, "'\"'\"'");
		else
			seq_putc(m, *p);
	}
	seq_putc(m, '\'');
}

static bool rule_has_slot(const struct saga_rule *r, unsigned int slot)
{
	return r->syscalls[slot / 64] & (1ULL << (slot % 64));
}

/* `all` when every slot is in the set (named or not), else the names in slot order. */
static void put_syscalls(struct seq_file *m, const struct saga_rule *r)
{
	unsigned int slot, w;
	bool all = true, first = true;

	for (w = 0; w < SAGA_SYSCALL_WORDS; w++)
		all &= r->syscalls[w] == ~0ULL;
	if (all) {
		seq_puts(m, "all");
		return;
	}
	for (slot = 0; slot < SAGA_NR_SLOTS; slot++) {
		if (!rule_has_slot(r, slot))
			continue;
		if (!first)
			seq_putc(m, ',');
		put_slot_name(m, slot);
		first = false;
	}
}

void saga_rule_show(struct seq_file *m, const struct saga_rule *r)
{
	seq_printf(m, "%u: %s ", r->id, saga_action_name(r->action));
	put_syscalls(m, r);
	if (r->match & SAGA_MATCH_PID)
		seq_printf(m, " pid=%u", r->pid);
	if (r->match & SAGA_MATCH_UID)
		seq_printf(m, " uid=%u", r->uid);
	if (r->match & SAGA_MATCH_COMM) {
		seq_puts(m, " comm=");
		put_word(m, r->comm);
	}
	if (r->match & SAGA_MATCH_EXE)	/* the identity the module holds, as the grammar reads it back */
		seq_printf(m, " exe=@%u:%u:%llu", MAJOR(r->exe_dev), MINOR(r->exe_dev), r->exe_ino);
	if (r->match & SAGA_MATCH_ERRORS)
		seq_puts(m, " errors");
	if (r->match & SAGA_MATCH_TREE)
		seq_puts(m, " tree");
	if (r->key[0]) {
		seq_puts(m, " key=");
		put_word(m, r->key);
	}
	seq_putc(m, '\n');
}

static int rules_show(struct seq_file *m, void *v)
{
	saga_rule_show(m, v);
	return 0;
}

static const struct seq_operations rules_ops = {
	.start = rules_start,
	.next = rules_next,
	.stop = rules_stop,
	.show = rules_show,
};

int saga_proc_init(void)
{
	saga_proc_dir = proc_mkdir("saga", NULL);
	if (!saga_proc_dir)
		return -ENOMEM;
	if (!proc_create_single("status", 0444, saga_proc_dir, status_show) ||
	    !proc_create_seq("stats", 0444, saga_proc_dir, &stats_ops) ||
	    !proc_create_seq("rules", 0400, saga_proc_dir, &rules_ops)) {
		proc_remove(saga_proc_dir);
		return -ENOMEM;
	}
	return 0;
}

void saga_proc_exit(void)
{
	proc_remove(saga_proc_dir);
}
