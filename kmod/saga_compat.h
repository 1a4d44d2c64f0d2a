/* SPDX-License-Identifier: GPL-2.0 */
/*
 * saga: every kernel-version difference the module cares about, in one place.
 * Tested on Debian's kernels: 6.1 and 6.1 PREEMPT_RT (Debian 12), 6.12 and
 * 6.12 PREEMPT_RT (Debian 13, and 6.12 on Debian 12), 7.x and 7.x
 * PREEMPT_RT (trixie-backports).
 *
 * What 6.13 to 7.3 changed and why nothing else is here: the timers the
 * module uses (timer_setup, mod_timer, timer_pending, timer_delete_sync;
 * del_timer* and from_timer are gone by 7.3: not used) exist unchanged
 * from 6.1 on; misc_register/misc_deregister, nonseekable_open and the
 * tracepoint API (for_each_kernel_tracepoint, tracepoint_probe_register,
 * tracepoint_synchronize_unregister) kept their signatures.  What changed
 * is when probes run, below.
 */
#ifndef SAGA_COMPAT_H
#define SAGA_COMPAT_H

#include <linux/version.h>
#include <linux/preempt.h>

/*
 * The probes' protected section (saga_probe.c says what it protects).
 * Before 6.14 __DO_TRACE() calls probes with preemption disabled.  6.14
 * made the syscall tracepoints faultable: __DECLARE_TRACE_SYSCALL() calls
 * them preemptible under rcu_read_lock_trace() only, so the probes
 * disable preemption themselves.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 14, 0)
#define SAGA_PROBE_ENTER()	preempt_disable_notrace()
#define SAGA_PROBE_LEAVE()	preempt_enable_notrace()
#else
#define SAGA_PROBE_ENTER()	do { } while (0)
#define SAGA_PROBE_LEAVE()	do { } while (0)
#endif

#endif /* SAGA_COMPAT_H */
