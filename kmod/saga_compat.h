/* SPDX-License-Identifier: GPL-2.0 */
/*
 * saga: every kernel-version difference the module cares about, in one place.
 * Tested on Debian's 6.1, 6.1 PREEMPT_RT and 6.12 kernels.
 */
#ifndef SAGA_COMPAT_H
#define SAGA_COMPAT_H

#include <linux/version.h>
#include <linux/timer.h>

/* from_timer() was renamed timer_container_of() in 6.16. */
#ifndef from_timer
#define from_timer(var, callback_timer, timer_fieldname) \
	timer_container_of(var, callback_timer, timer_fieldname)
#endif

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
