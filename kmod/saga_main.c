// SPDX-License-Identifier: GPL-2.0
/*
 * saga: syscall logging.  Module load/unload and parameters
 * (docs/proc.md lists them; /sys/module/saga/parameters shows them).
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/log2.h>
#include <linux/timekeeping.h>

#include "saga.h"

/* Like sysdig/Falco's per-CPU buffers: a burst survives a reader that is late by milliseconds. */
unsigned int saga_ring_bytes = 4 << 20;
module_param_named(ring_size, saga_ring_bytes, uint, 0444);
MODULE_PARM_DESC(ring_size, "event ring bytes per CPU, rounded up to a power of two (4096..268435456, default 4194304)");

unsigned int saga_entries = 4096;
module_param_named(entries, saga_entries, uint, 0444);
MODULE_PARM_DESC(entries, "calls in flight whose entry state is kept, rounded up to a power of two (64..1048576, default 4096)");

unsigned int saga_tree_tasks = 4096;
module_param_named(tree_tasks, saga_tree_tasks, uint, 0444);
MODULE_PARM_DESC(tree_tasks, "tasks that can carry tree-rule marks at once, rounded up to a power of two (64..1048576, default 4096)");

bool saga_enabled = true;
module_param_named(enabled, saga_enabled, bool, 0444);
MODULE_PARM_DESC(enabled, "capture from load (default Y); the SET_ENABLED ioctl changes it later");

int saga_default_action = SAGA_ACT_LOG;

static int default_action_set(const char *val, const struct kernel_param *kp)
{
	int i;

	for (i = 0; i <= SAGA_ACT_MAX; i++) {
		if (sysfs_streq(val, saga_action_name(i))) {
			saga_default_action = i;
			return 0;
		}
	}
	if (!kstrtoint(val, 10, &i) && i >= 0 && i <= SAGA_ACT_MAX) {
		saga_default_action = i;
		return 0;
	}
	return -EINVAL;
}

static int default_action_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", saga_action_name(saga_default_action));
}

static const struct kernel_param_ops default_action_ops = {
	.set = default_action_set,
	.get = default_action_get,
};
module_param_cb(default_action, &default_action_ops, NULL, 0444);
MODULE_PARM_DESC(default_action, "action for calls no rule matches: log (default), count or ignore");

bool saga_locked;
u64 saga_reset_ns;
DEFINE_MUTEX(saga_ctl_mutex);

static unsigned int clamp_pow2(unsigned int v, unsigned int lo, unsigned int hi)
{
	return roundup_pow_of_two(clamp(v, lo, hi));
}

static int __init saga_init(void)
{
	int err;

	saga_ring_bytes = clamp_pow2(saga_ring_bytes, 4096, 1U << 28);
	saga_entries = clamp_pow2(saga_entries, 64, 1U << 20);
	saga_tree_tasks = clamp_pow2(saga_tree_tasks, 64, 1U << 20);
	saga_reset_ns = ktime_get_real_ns();

	saga_stats = alloc_percpu(struct saga_cpu_stats);
	if (!saga_stats)
		return -ENOMEM;
	err = saga_entries_init();
	if (err)
		goto free_stats;
	err = saga_tree_init();
	if (err)
		goto free_entries;
	err = saga_rings_init();
	if (err)
		goto free_tree;
	err = saga_rules_init();
	if (err)
		goto free_rings;
	err = saga_probes_register();
	if (err)
		goto free_rules;
	err = saga_proc_init();
	if (err)
		goto unregister;
	err = saga_dev_init();
	if (err)
		goto remove_proc;
	pr_info("saga: %s loaded: ring %u bytes x %u CPUs, %u entries, default %s, %s\n",
		SAGA_VERSION, saga_ring_bytes, num_possible_cpus(), saga_entries,
		saga_action_name(saga_default_action), saga_enabled ? "capturing" : "paused");
	return 0;

remove_proc:
	saga_proc_exit();
unregister:
	saga_probes_unregister();
free_rules:
	saga_rules_exit();
free_rings:
	saga_rings_exit();
free_tree:
	saga_tree_exit();
free_entries:
	saga_entries_exit();
free_stats:
	free_percpu(saga_stats);
	return err;
}

static void __exit saga_exit(void)
{
	saga_dev_exit();	/* no fd is open: each one holds a module reference */
	saga_proc_exit();
	saga_probes_unregister();	/* waits until no probe runs */
	saga_rules_exit();
	saga_rings_exit();
	saga_tree_exit();
	saga_entries_exit();
	free_percpu(saga_stats);
	pr_info("saga: unloaded\n");
}

module_init(saga_init);
module_exit(saga_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("saga authors");
MODULE_DESCRIPTION("saga: syscall counters, event log and rules on the syscall tracepoints");
MODULE_VERSION(SAGA_VERSION);
