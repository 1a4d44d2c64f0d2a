// SPDX-License-Identifier: GPL-2.0
/*
 * saga: the probes on the sys_enter and sys_exit tracepoints, and on
 * sched_process_fork and sched_process_free for the marks of tree rules.
 *
 * Both run with preemption disabled (SAGA_PROBE_ENTER, see below) and must
 * never sleep, take a lock or allocate (on PREEMPT_RT spinlocks sleep):
 * they use per-CPU counters and rings, the preallocated entry table and
 * the RCU-published rule set.
 *
 * sys_enter decides whether the call may be logged (only then is entry
 * state kept); sys_exit, with the return value known, decides for good:
 * ignore -> nothing, count -> per-CPU counters, log -> counters and a
 * record.  exit and exit_group never reach sys_exit and are handled at
 * entry (flag NORETURN); the child side of a fork returns from a call it
 * never entered and is not counted (saga_fork_slot()).
 */
#include <linux/tracepoint.h>
#include <linux/ptrace.h>
#include <linux/cred.h>
#include <linux/uidgid.h>
#include <linux/user_namespace.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <linux/string.h>
#include <linux/cgroup.h>
#include <asm/syscall.h>

#include "saga.h"
#include "saga_syscalls.h"

struct saga_cpu_stats __percpu *saga_stats;
atomic64_t saga_read_events;

static struct tracepoint *saga_tp_enter, *saga_tp_exit, *saga_tp_fork, *saga_tp_free;

/* Where a record is built before it is copied into the ring. */
static DEFINE_PER_CPU_ALIGNED(u64, saga_scratch[SAGA_EVENT_MAX / 8]);

/* The slot a call is counted in, and SAGA_EVF_COMPAT for ia32 calls. */
static __always_inline unsigned int slot_of(long id, u16 *flags)
{
	if (in_ia32_syscall()) {
		*flags = SAGA_EVF_COMPAT;
		return (unsigned long)id < SAGA_NR_IA32 ? saga_ia32_slot[id] : SAGA_NR_UNKNOWN;
	}
	*flags = 0;
	return (unsigned long)id < SAGA_COMPAT_BASE ? id : SAGA_NR_UNKNOWN;
}

static __always_inline struct saga_verdict verdict_of(const struct saga_ruleset *rs, unsigned int slot)
{
	u8 act = rs->fast[slot];

	if (likely(act != SAGA_FAST_SLOW))
		return (struct saga_verdict){ act, act, rs->fast_id[slot], rs->fast_id[slot] };
	return saga_rules_walk(rs, slot, current);
}

static __always_inline bool may_log(struct saga_verdict v)
{
	return v.ok == SAGA_ACT_LOG || v.err == SAGA_ACT_LOG;
}

static __always_inline void count_call(unsigned int slot, long ret)
{
	this_cpu_inc(saga_stats->calls[slot]);
	if (ret < 0)
		this_cpu_inc(saga_stats->errors[slot]);
}

/*
 * Copy one path argument without sleeping: with page faults disabled a
 * user page that is not present fails the copy instead of being faulted
 * in.  (strncpy_from_user_nofault() does the same but is not exported.)
 * The buffer has SAGA_PATH_MAX + 1 bytes, to tell a 255-byte path from a
 * longer one.  path_len counts the NUL: "" is 1, a NULL pointer 0 (no
 * path, not a fault).
 */
static void copy_path(struct saga_entry *e, unsigned int k, unsigned long uptr)
{
	char *dst = e->path[k];
	long n;

	e->path_len[k] = 0;
	if (!uptr)
		return;
	pagefault_disable();
	n = strncpy_from_user(dst, (const char __user *)uptr, SAGA_PATH_MAX + 1);
	pagefault_enable();
	if (n < 0) {
		e->flags |= SAGA_EVF_PATH_FAULT;
		this_cpu_inc(saga_stats->path_faults);
		return;
	}
	if (n >= SAGA_PATH_MAX) {	/* 256 bytes or more, no NUL in the buffer: keep 255 */
		n = SAGA_PATH_MAX - 1;
		e->flags |= SAGA_EVF_PATH_TRUNC;
	}
	dst[n] = '\0';
	e->path_len[k] = n + 1;
}

static void aux_fault(struct saga_entry *e)
{
	e->flags |= SAGA_EVF_AUX_FAULT;
	this_cpu_inc(saga_stats->aux_faults);
}

/*
 * execve's argv: whole strings, at most SAGA_AUX_ARGV_MAX bytes (NULs
 * included) and SAGA_AUX_ARGV_ARGS strings; a string is read with one byte
 * more room than may be kept, to tell one that fits from one that does not.
 */
static void copy_argv(struct saga_entry *e, unsigned long argv, bool compat)
{
	unsigned int i, len = 0;
	long n;

	if (!argv)
		return;
	pagefault_disable();
	for (i = 0; ; i++) {
		unsigned long p;

		if (compat) {
			u32 p32;

			if (get_user(p32, (const u32 __user *)argv + i))
				goto fault;
			p = p32;
		} else if (get_user(p, (const unsigned long __user *)argv + i)) {
			goto fault;
		}
		if (!p)
			break;
		if (i >= SAGA_AUX_ARGV_ARGS || len >= SAGA_AUX_ARGV_MAX) {
			e->flags |= SAGA_EVF_AUX_TRUNC;
			break;
		}
		n = strncpy_from_user(e->aux + len, (const char __user *)p, SAGA_AUX_ARGV_MAX + 1 - len);
		if (n < 0)
			goto fault;
		if (n + 1 > SAGA_AUX_ARGV_MAX - len) {
			e->flags |= SAGA_EVF_AUX_TRUNC;
			break;
		}
		len += n + 1;	/* strncpy_from_user copied the NUL */
	}
	pagefault_enable();
	e->aux_len = len;
	return;
fault:
	pagefault_enable();
	e->aux_len = len;
	aux_fault(e);
}

/* A struct read whole: min(len, bound) bytes at ptr, AUX_TRUNC beyond. */
static void copy_blob(struct saga_entry *e, unsigned long ptr, u32 len, u32 bound)
{
	unsigned long left;

	if (len > bound) {
		len = bound;
		e->flags |= SAGA_EVF_AUX_TRUNC;
	}
	e->aux_len = 0;
	if (!len)
		return;
	pagefault_disable();
	left = copy_from_user(e->aux, (const void __user *)ptr, len);
	pagefault_enable();
	if (left)
		aux_fault(e);
	else
		e->aux_len = len;
}

static inline void set_aux_kind(struct saga_entry *e, u16 spec)
{
	e->flags |= (spec & 7) << SAGA_EVF_AUX_SHIFT;
}

/* The aux read at entry (saga_slot_aux), or for aux read at exit the buffer length it will have. */
static void entry_aux(struct saga_entry *e, u16 spec)
{
	unsigned long ptr = e->args[SAGA_AUXSPEC_PTR(spec)];
	unsigned long len = e->args[SAGA_AUXSPEC_LEN(spec)];
	u32 room;

	if (spec & SAGA_AUXSPEC_EXIT) {
		if (!ptr || !len)
			return;
		pagefault_disable();
		if (!get_user(room, (const u32 __user *)len))
			e->aux_room = room;
		pagefault_enable();
		return;
	}
	if ((spec & 7) == SAGA_AUX_ARGV) {
		set_aux_kind(e, spec);
		copy_argv(e, ptr, e->flags & SAGA_EVF_COMPAT);
		return;
	}
	if (!ptr)
		return;	/* sendto on a connected socket: no address */
	set_aux_kind(e, spec);
	copy_blob(e, ptr, (u32)len,
		  (spec & 7) == SAGA_AUX_CLONE_ARGS ? SAGA_AUX_CLONE_ARGS_MAX : SAGA_AUX_SOCKADDR_MAX);
}

/* The address accept/recvfrom returned: min(its length, the buffer's, the bound) bytes. */
static void exit_aux(struct saga_entry *e)
{
	u16 spec = saga_slot_aux[e->slot];
	unsigned long lenp = e->args[SAGA_AUXSPEC_LEN(spec)];
	u32 len;
	int err;

	if (!(spec & SAGA_AUXSPEC_EXIT))
		return;
	set_aux_kind(e, spec);
	pagefault_disable();
	err = get_user(len, (const u32 __user *)lenp);
	pagefault_enable();
	if (err) {
		aux_fault(e);
		return;
	}
	if (len > e->aux_room) {
		e->flags |= SAGA_EVF_AUX_TRUNC;
		len = e->aux_room;
	}
	copy_blob(e, e->args[SAGA_AUXSPEC_PTR(spec)], len, SAGA_AUX_SOCKADDR_MAX);
}

static noinline void stash_entry(struct pt_regs *regs, unsigned int slot, u16 flags)
{
	struct saga_entry *e = saga_entry_claim(current);
	unsigned long args[6];
	unsigned int paths = saga_slot_paths[slot], k, i;
	u16 aux = saga_slot_aux[slot];

	if (!e)
		return;		/* the exit record will say NO_ENTER */
	e->mono_ns = ktime_get_ns();
	syscall_get_arguments(current, regs, args);
	for (i = 0; i < 6; i++)
		e->args[i] = args[i];
	e->slot = slot;
	e->flags = flags;
	e->aux_len = 0;
	e->aux_room = 0;
	for (k = 0; k < SAGA_NR_PATHS; k++) {
		unsigned int idx = (paths >> (4 * k)) & 0xf;

		e->path_len[k] = 0;
		if (idx)
			copy_path(e, k, args[idx - 1]);
	}
	if (aux)
		entry_aux(e, aux);
	saga_entry_publish(e, current);
}

/* The parts of a record that describe the task. */
static void fill_task(struct saga_event *ev)
{
	struct task_struct *task = current;

	ev->cpu = smp_processor_id();
	ev->pid = task_tgid_nr(task);
	ev->tid = task_pid_nr(task);
	rcu_read_lock();
	ev->ppid = task_tgid_nr(rcu_dereference(task->real_parent));
	ev->cgroup_id = cgroup_id(task_dfl_cgroup(task));
	rcu_read_unlock();
	ev->uid = from_kuid_munged(&init_user_ns, current_uid());
	ev->gid = from_kgid_munged(&init_user_ns, current_gid());
	memcpy(ev->comm, task->comm, SAGA_COMM_LEN);
	ev->comm[SAGA_COMM_LEN - 1] = '\0';
}

/* Append the entry's paths and aux after the fixed part, pad to 8; returns the record size. */
static unsigned int put_data(struct saga_event *ev, const struct saga_entry *e)
{
	char *p = (char *)(ev + 1);
	unsigned int k, end;

	ev->path_len[0] = ev->path_len[1] = ev->aux_len = 0;
	if (e) {
		for (k = 0; k < SAGA_NR_PATHS; k++) {
			ev->path_len[k] = e->path_len[k];
			memcpy(p, e->path[k], e->path_len[k]);	/* the NUL is in the buffer */
			p += e->path_len[k];
		}
		ev->aux_len = e->aux_len;
		memcpy(p, e->aux, e->aux_len);
		p += e->aux_len;
	}
	end = p - (char *)ev;
	ev->size = ALIGN(end, 8);
	memset(p, 0, ev->size - end);
	return ev->size;
}

static void emit(struct saga_event *ev)
{
	if (saga_ring_write(ev, ev->size))
		this_cpu_inc(saga_stats->events);
	else
		this_cpu_inc(saga_stats->drops);
}

static noinline void log_exit(struct pt_regs *regs, unsigned int slot, u16 flags, long id, long ret,
			      u32 rule_id)
{
	struct saga_event *ev = (struct saga_event *)this_cpu_ptr(saga_scratch);
	struct saga_entry *e = saga_entry_take(current);
	unsigned int i;
	u64 now;

	saga_ring_begin();	/* before the clock: read() orders records by it */
	now = ktime_get_ns();
	ev->nr = slot;
	ev->orig_nr = (u16)id;
	ev->ret = ret;
	ev->rule_id = rule_id;
	fill_task(ev);
	if (e && e->slot == slot) {
		if (e->aux_room && ret >= 0)
			exit_aux(e);
		ev->flags = e->flags;
		ev->ts_ns = ktime_mono_to_real(e->mono_ns);
		ev->duration_ns = now - e->mono_ns;
		for (i = 0; i < 6; i++)
			ev->args[i] = e->args[i];
		put_data(ev, e);
	} else {
		unsigned long args[6];

		ev->flags = flags | SAGA_EVF_NO_ENTER;
		ev->ts_ns = ktime_mono_to_real(now);
		ev->duration_ns = 0;
		syscall_get_arguments(current, regs, args);
		for (i = 0; i < 6; i++)
			ev->args[i] = args[i];
		put_data(ev, NULL);
		this_cpu_inc(saga_stats->no_enter);
	}
	if (e)
		saga_entry_release(e);
	emit(ev);
}

/*
 * Calls that sys_exit cannot attribute (saga_done_at_entry(), generated):
 * exit and exit_group never get there, and (rt_)sigreturn restores a
 * context whose syscall number is -1.  They are counted and logged at
 * entry (flag NORETURN, ret 0).
 */
static noinline void noreturn_call(const struct saga_ruleset *rs, struct pt_regs *regs,
				   unsigned int slot, u16 flags, long id)
{
	struct saga_verdict v = verdict_of(rs, slot);
	struct saga_event *ev;
	unsigned long args[6];
	unsigned int i;

	if (v.ok == SAGA_ACT_IGNORE)
		return;
	count_call(slot, 0);
	if (v.ok != SAGA_ACT_LOG || saga_is_reader(current->tgid))
		return;
	ev = (struct saga_event *)this_cpu_ptr(saga_scratch);
	ev->nr = slot;
	ev->orig_nr = (u16)id;
	ev->flags = flags | SAGA_EVF_NORETURN;
	ev->ret = 0;
	ev->rule_id = v.ok_id;
	saga_ring_begin();
	ev->ts_ns = ktime_get_real_ns();
	ev->duration_ns = 0;
	fill_task(ev);
	syscall_get_arguments(current, regs, args);
	for (i = 0; i < 6; i++)
		ev->args[i] = args[i];
	put_data(ev, NULL);
	emit(ev);
}

/* The log paths are out of line so the count-only path stays a short leaf. */
static noinline void drop_entry(void)
{
	struct saga_entry *e = saga_entry_take(current);

	if (e)
		saga_entry_release(e);
}

static noinline void enter_call(const struct saga_ruleset *rs, struct pt_regs *regs, long id)
{
	u16 flags;
	unsigned int slot = slot_of(id, &flags);

	if (unlikely(saga_done_at_entry(slot)))
		noreturn_call(rs, regs, slot, flags, id);
	else if (may_log(verdict_of(rs, slot)) && !saga_is_reader(current->tgid))
		stash_entry(regs, slot, flags);
}

/*
 * The protected section.  Everything the probes share with the rest of the
 * module (saga_enabled, the rule set, per-CPU counters, rings and scratch)
 * is touched only between SAGA_PROBE_ENTER() and SAGA_PROBE_LEAVE(): a
 * preemption-disabled section on every kernel (saga_compat.h), as in the
 * kernel's own syscall probes (kernel/trace/trace_syscalls.c).
 *
 * Why the order is right: since RCU's flavours were consolidated (4.20) a
 * preemption-disabled region is an RCU read-side critical section, on
 * PREEMPT_RT too, so an ordinary grace period waits for it:
 *  - the rule set loaded with rcu_dereference_sched() inside the section
 *    is freed by kvfree_rcu() only after the probe has left it;
 *  - saga_set_enabled(false) returns from synchronize_rcu() only once no
 *    probe still acts on saga_enabled being true;
 *  - per-CPU data has one user at a time on its CPU.
 * On 6.14+ the tracepoint holds only tasks-trace RCU, which keeps the
 * probe code alive until tracepoint_synchronize_unregister() but not the
 * rule set: a probe preempted before SAGA_PROBE_ENTER() can outlast an
 * ordinary grace period, so nothing may be read before it.
 */
static notrace void saga_sys_enter(void *data, struct pt_regs *regs, long id)
{
	const struct saga_ruleset *rs;

	SAGA_PROBE_ENTER();
	if (!smp_load_acquire(&saga_enabled))
		goto out;
	rs = rcu_dereference_sched(saga_rules);
	if (rs->enter_active || unlikely(saga_maybe_done_at_entry(id)))
		enter_call(rs, regs, id);	/* else count/ignore only: nothing to keep */
out:
	SAGA_PROBE_LEAVE();
}

/* The general exit path: ia32 and unknown numbers, rules with fields, logging. */
static noinline void exit_call(const struct saga_ruleset *rs, struct pt_regs *regs, long id, long ret)
{
	struct saga_verdict v;
	unsigned int slot;
	u8 act;
	u16 flags;

	if (unlikely(id == -1))	/* sigreturn's restored context, or a skipped call */
		return;
	slot = slot_of(id, &flags);
	if (unlikely(ret == 0 && saga_fork_slot(slot)))
		return;	/* a new task's return from fork: the call counts once, in the parent */
	v = verdict_of(rs, slot);
	act = ret < 0 ? v.err : v.ok;
	if (act != SAGA_ACT_IGNORE)
		count_call(slot, ret);
	if (act == SAGA_ACT_LOG) {
		if (!saga_is_reader(current->tgid))
			log_exit(regs, slot, flags, id, ret, ret < 0 ? v.err_id : v.ok_id);
	} else if (unlikely(may_log(v))) {
		drop_entry();	/* an `errors` rule kept entry state for a call that succeeded */
	}
}

static notrace void saga_sys_exit(void *data, struct pt_regs *regs, long ret)
{
	const struct saga_ruleset *rs;
	long id;
	u8 act;

	SAGA_PROBE_ENTER();
	if (!smp_load_acquire(&saga_enabled))
		goto out;
	rs = rcu_dereference_sched(saga_rules);
	id = syscall_get_nr(current, regs);
	if (likely((unsigned long)id < SAGA_COMPAT_BASE && !in_ia32_syscall())) {
		/* A native call whose slot is decided by the table alone: count it here
		 * (fork slots always walk: their child side is checked in exit_call). */
		act = rs->fast[id];
		if (act == SAGA_ACT_IGNORE)
			goto out;
		if (act == SAGA_ACT_COUNT) {
			count_call(id, ret);
			goto out;
		}
	}
	exit_call(rs, regs, id, ret);
out:
	SAGA_PROBE_LEAVE();
}

/*
 * A task forks (in the parent, before the child can run): mark the child
 * for the tree rules the parent is in.  sched tracepoints are not
 * faultable: the probe runs with preemption disabled on every kernel, so
 * the rule set it reads is an RCU reader's as in the syscall probes.
 * Marks are made whether capture is paused or not: they are the rules'
 * state, not a record.
 */
static notrace void saga_fork(void *data, struct task_struct *parent, struct task_struct *child)
{
	const struct saga_ruleset *rs = rcu_dereference_sched(saga_rules);

	if (unlikely(rs->nr_tree))
		saga_tree_fork(rs, parent, child);
}

static notrace void saga_free(void *data, struct task_struct *task)
{
	saga_tree_free(task);
}

static void find_tracepoint(struct tracepoint *tp, void *priv)
{
	if (!strcmp(tp->name, "sys_enter"))
		saga_tp_enter = tp;
	else if (!strcmp(tp->name, "sys_exit"))
		saga_tp_exit = tp;
	else if (!strcmp(tp->name, "sched_process_fork"))
		saga_tp_fork = tp;
	else if (!strcmp(tp->name, "sched_process_free"))
		saga_tp_free = tp;
}

int saga_probes_register(void)
{
	int err;

	for_each_kernel_tracepoint(find_tracepoint, NULL);
	if (!saga_tp_enter || !saga_tp_exit) {
		pr_err("saga: no sys_enter/sys_exit tracepoints (CONFIG_HAVE_SYSCALL_TRACEPOINTS?)\n");
		return -ENOENT;
	}
	if (!saga_tp_fork || !saga_tp_free) {
		pr_err("saga: no sched_process_fork/sched_process_free tracepoints\n");
		return -ENOENT;
	}
	/* Marks are released before any can be made, and capture starts last. */
	err = tracepoint_probe_register(saga_tp_free, saga_free, NULL);
	if (err)
		return err;
	err = tracepoint_probe_register(saga_tp_fork, saga_fork, NULL);
	if (err)
		goto free;
	err = tracepoint_probe_register(saga_tp_exit, saga_sys_exit, NULL);
	if (err)
		goto fork;
	err = tracepoint_probe_register(saga_tp_enter, saga_sys_enter, NULL);
	if (!err)
		return 0;
	tracepoint_probe_unregister(saga_tp_exit, saga_sys_exit, NULL);
fork:
	tracepoint_probe_unregister(saga_tp_fork, saga_fork, NULL);
free:
	tracepoint_probe_unregister(saga_tp_free, saga_free, NULL);
	tracepoint_synchronize_unregister();
	return err;
}

void saga_probes_unregister(void)
{
	tracepoint_probe_unregister(saga_tp_enter, saga_sys_enter, NULL);
	tracepoint_probe_unregister(saga_tp_exit, saga_sys_exit, NULL);
	tracepoint_probe_unregister(saga_tp_fork, saga_fork, NULL);
	tracepoint_probe_unregister(saga_tp_free, saga_free, NULL);
	/* No probe runs on our memory once this returns. */
	tracepoint_synchronize_unregister();
}

/* Pausing waits until no probe still acts on the old state (each reads
 * saga_enabled inside its preemption-disabled section: synchronize_rcu()
 * waits for those); resuming starts from an empty entry table (calls that
 * began while paused are logged NO_ENTER), published before the flag. */
int saga_set_enabled(bool on)
{
	if (on == READ_ONCE(saga_enabled))
		return 0;
	if (on) {
		saga_entries_clear();
		smp_store_release(&saga_enabled, true);
	} else {
		WRITE_ONCE(saga_enabled, false);
		synchronize_rcu();
	}
	return 0;
}

void saga_stats_sum(struct saga_totals *t)
{
	unsigned int slot;
	int cpu;

	memset(t, 0, sizeof(*t));
	for_each_possible_cpu(cpu) {
		const struct saga_cpu_stats *s = per_cpu_ptr(saga_stats, cpu);

		for (slot = 0; slot < SAGA_NR_SLOTS; slot++) {
			t->calls += READ_ONCE(s->calls[slot]);
			t->errors += READ_ONCE(s->errors[slot]);
		}
		t->events += READ_ONCE(s->events);
		t->drops += READ_ONCE(s->drops);
		t->no_enter += READ_ONCE(s->no_enter);
		t->path_faults += READ_ONCE(s->path_faults);
		t->aux_faults += READ_ONCE(s->aux_faults);
		t->tree_drops += READ_ONCE(s->tree_drops);
	}
}

void saga_stats_slot(unsigned int slot, u64 *calls, u64 *errors)
{
	int cpu;

	*calls = *errors = 0;
	for_each_possible_cpu(cpu) {
		const struct saga_cpu_stats *s = per_cpu_ptr(saga_stats, cpu);

		*calls += READ_ONCE(s->calls[slot]);
		*errors += READ_ONCE(s->errors[slot]);
	}
}

/* Racing increments on other CPUs may survive the reset: counters are not locked. */
void saga_stats_reset(void)
{
	int cpu;

	for_each_possible_cpu(cpu)
		memset(per_cpu_ptr(saga_stats, cpu), 0, sizeof(struct saga_cpu_stats));
	atomic64_set(&saga_read_events, 0);
	WRITE_ONCE(saga_reset_ns, ktime_get_real_ns());
}
