// SPDX-License-Identifier: GPL-2.0
/*
 * saga: /dev/saga, a misc device (mode 0600).
 *
 * read() returns whole records (docs/kernel-abi.md), poll() says when some
 * are waiting, and the ioctls of include/uapi/linux/saga.h, one handler
 * each.  Every state change needs CAP_SYS_ADMIN (EPERM); RULE_REPLACE and
 * SET_ENABLED are refused with EBUSY once rules are locked.  Read-only
 * ioctls work for anyone holding the fd.
 */
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/uaccess.h>
#include <linux/capability.h>
#include <linux/slab.h>
#include <linux/compat.h>
#include <linux/string.h>

#include "saga.h"

struct saga_file {
	u32 tgid;		/* registered as a reader (0: could not be) */
};

static int saga_open(struct inode *inode, struct file *file)
{
	struct saga_file *sf = kzalloc(sizeof(*sf), GFP_KERNEL);

	if (!sf)
		return -ENOMEM;
	if (!saga_reader_add(current->tgid))
		sf->tgid = current->tgid;
	file->private_data = sf;
	return nonseekable_open(inode, file);
}

static int saga_release(struct inode *inode, struct file *file)
{
	struct saga_file *sf = file->private_data;

	if (sf->tgid)
		saga_reader_del(sf->tgid);
	kfree(sf);
	return 0;
}

static ssize_t saga_read(struct file *file, char __user *buf, size_t count, loff_t *ppos)
{
	return saga_rings_read(buf, count, file->f_flags & O_NONBLOCK);
}

static __poll_t saga_poll(struct file *file, struct poll_table_struct *wait)
{
	return saga_rings_poll(file, wait);
}

/* ---- read-only ioctls ------------------------------------------------- */

static long ioc_get_info(void __user *arg)
{
	struct saga_info info = {
		.abi_version = SAGA_ABI_VERSION,
		.features = SAGA_FEAT_PATHS | SAGA_FEAT_DURATION | SAGA_FEAT_COMPAT | SAGA_FEAT_POLL |
			    SAGA_FEAT_AUX | SAGA_FEAT_CGROUP | SAGA_FEAT_EXE | SAGA_FEAT_TREE,
		.ring_bytes = saga_ring_bytes,
		.nr_cpus = num_possible_cpus(),
		.nr_slots = SAGA_NR_SLOTS,
		.max_rules = SAGA_MAX_RULES,
		.event_size = sizeof(struct saga_event),
		.event_max = SAGA_EVENT_MAX,
		.path_max = SAGA_PATH_MAX,
		.default_action = saga_default_action,
	};

	mutex_lock(&saga_ctl_mutex);
	info.enabled = READ_ONCE(saga_enabled);
	info.locked = saga_locked;
	info.nr_rules = saga_rules_current()->count;
	mutex_unlock(&saga_ctl_mutex);
	strscpy(info.version, SAGA_VERSION, sizeof(info.version));
	return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
}

static long ioc_rule_list(void __user *arg)
{
	struct saga_rule_list l;
	struct saga_ruleset *rs;
	long ret = 0;

	if (copy_from_user(&l, arg, sizeof(l)))
		return -EFAULT;
	mutex_lock(&saga_ctl_mutex);
	rs = saga_rules_current();
	l.count = rs->count;
	l.generation = rs->generation;
	if (l.capacity && copy_to_user(u64_to_user_ptr(l.rules_ptr), rs->rules,
				       min(l.capacity, rs->count) * sizeof(struct saga_rule)))
		ret = -EFAULT;
	mutex_unlock(&saga_ctl_mutex);
	if (!ret && copy_to_user(arg, &l, sizeof(l)))
		ret = -EFAULT;
	return ret;
}

static long ioc_stats_get(void __user *arg)
{
	struct saga_counter __user *out;
	struct saga_totals t;
	struct saga_stats s;
	unsigned int slot;

	if (copy_from_user(&s, arg, sizeof(s)))
		return -EFAULT;
	if (s.__pad || s.nr_slots > SAGA_NR_SLOTS)
		return -EINVAL;
	out = u64_to_user_ptr(s.counters_ptr);
	for (slot = 0; slot < s.nr_slots; slot++) {
		struct saga_counter c;

		saga_stats_slot(slot, &c.calls, &c.errors);
		if (copy_to_user(&out[slot], &c, sizeof(c)))
			return -EFAULT;
	}
	saga_stats_sum(&t);
	s.calls = t.calls;
	s.errors = t.errors;
	s.events = t.events;
	s.drops = t.drops;
	s.read = atomic64_read(&saga_read_events);
	s.no_enter = t.no_enter;
	s.path_faults = t.path_faults;
	s.aux_faults = t.aux_faults;
	s.tree_drops = t.tree_drops;
	s.reset_ns = READ_ONCE(saga_reset_ns);
	return copy_to_user(arg, &s, sizeof(s)) ? -EFAULT : 0;
}

/* ---- state changes (saga_ctl_mutex held, CAP_SYS_ADMIN checked) -------- */

static long ioc_rule_replace(void __user *arg)
{
	struct saga_rule_list l;
	struct saga_rule *rules;
	long ret;

	if (copy_from_user(&l, arg, sizeof(l)))
		return -EFAULT;
	if (saga_locked)
		return -EBUSY;
	if (l.count > SAGA_MAX_RULES)
		return -ENOSPC;
	rules = kvmalloc_array(max(l.count, 1U), sizeof(*rules), GFP_KERNEL);
	if (!rules)
		return -ENOMEM;
	if (copy_from_user(rules, u64_to_user_ptr(l.rules_ptr), l.count * sizeof(*rules)))
		ret = -EFAULT;
	else
		ret = saga_rules_replace(rules, l.count);
	kvfree(rules);
	return ret;
}

static long ioc_rule_lock(void)
{
	saga_locked = true;
	return 0;
}

static long ioc_stats_reset(void)
{
	saga_stats_reset();
	return 0;
}

static long ioc_set_enabled(void __user *arg)
{
	u32 on;

	if (get_user(on, (u32 __user *)arg))
		return -EFAULT;
	if (on > 1)
		return -EINVAL;
	if (saga_locked)
		return -EBUSY;
	return saga_set_enabled(on);
}

static long saga_change(unsigned int cmd, void __user *arg)
{
	switch (cmd) {
	case SAGA_IOC_RULE_REPLACE:	return ioc_rule_replace(arg);
	case SAGA_IOC_RULE_LOCK:	return ioc_rule_lock();
	case SAGA_IOC_STATS_RESET:	return ioc_stats_reset();
	case SAGA_IOC_SET_ENABLED:	return ioc_set_enabled(arg);
	}
	return -ENOTTY;
}

static long saga_ioctl(struct file *file, unsigned int cmd, unsigned long uarg)
{
	void __user *arg = (void __user *)uarg;
	long ret;

	switch (cmd) {
	case SAGA_IOC_GET_INFO:
		return ioc_get_info(arg);
	case SAGA_IOC_RULE_LIST:
		return ioc_rule_list(arg);
	case SAGA_IOC_STATS_GET:
		return ioc_stats_get(arg);
	case SAGA_IOC_RULE_REPLACE:
	case SAGA_IOC_RULE_LOCK:
	case SAGA_IOC_STATS_RESET:
	case SAGA_IOC_SET_ENABLED:
		break;
	default:
		return -ENOTTY;
	}
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (mutex_lock_interruptible(&saga_ctl_mutex))
		return -ERESTARTSYS;
	ret = saga_change(cmd, arg);
	mutex_unlock(&saga_ctl_mutex);
	return ret;
}

static const struct file_operations saga_fops = {
	.owner = THIS_MODULE,
	.open = saga_open,
	.release = saga_release,
	.read = saga_read,
	.poll = saga_poll,
	.unlocked_ioctl = saga_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice saga_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = SAGA_DEVICE_NAME,
	.fops = &saga_fops,
	.mode = 0600,
};

int saga_dev_init(void)
{
	return misc_register(&saga_misc);
}

void saga_dev_exit(void)
{
	misc_deregister(&saga_misc);
}
