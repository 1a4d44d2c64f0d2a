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
 * Syscall tracepoints became faultable (probes called with preemption
 * enabled) in 6.14; the probes here rely on preemption being disabled
 * around them (per-CPU rings, single producer per CPU).
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 14, 0)
#define SAGA_PROBE_ENTER()	preempt_disable_notrace()
#define SAGA_PROBE_LEAVE()	preempt_enable_notrace()
#else
#define SAGA_PROBE_ENTER()	do { } while (0)
#define SAGA_PROBE_LEAVE()	do { } while (0)
#endif

#endif /* SAGA_COMPAT_H */
