// SPDX-License-Identifier: GPL-2.0
/*
 * saga: per-CPU event rings and the readers of /dev/saga.
 *
 * One byte ring per CPU of variable-size records (8-byte aligned, so a
 * record's first 8 bytes never wrap).  The producer is the probe running
 * on that CPU with preemption disabled, the consumer is read() under
 * saga_read_mutex: head and tail are each written by one side only and
 * published with release/acquire.  A full ring drops the record (counted).
 *
 * Wake-ups are batched: a producer whose write takes the fill past the
 * wake mark queues an irq_work (safe from probe context, and on
 * PREEMPT_RT runs where sleeping locks are allowed), and a timer checks
 * every SAGA_WAKE_MS while someone waits, so a lone event reaches a
 * sleeping reader quickly without one wake-up per event.
 */
#include <linux/vmalloc.h>
#include <linux/uaccess.h>
#include <linux/irq_work.h>
#include <linux/poll.h>
#include <linux/jiffies.h>
#include <linux/timer.h>
#include <linux/sched/signal.h>

#include "saga.h"

#define SAGA_WAKE_MS	20

struct saga_ring {
	unsigned long head;	/* producer: next byte to write */
	unsigned long tail;	/* consumer: next byte to read */
	char *data;
};

static DEFINE_PER_CPU(struct saga_ring, saga_ring);
static DEFINE_MUTEX(saga_read_mutex);
static DECLARE_WAIT_QUEUE_HEAD(saga_wait);
static struct irq_work saga_wake_work;
static struct timer_list saga_wake_timer;
static unsigned int saga_next_cpu;	/* where the next read() starts: fairness */

u32 saga_reader_tgid[SAGA_MAX_READERS];
static unsigned int saga_reader_refs[SAGA_MAX_READERS];
static DEFINE_MUTEX(saga_reader_mutex);

static inline unsigned int ring_mask(void)
{
	return saga_ring_bytes - 1;
}

static unsigned long ring_used(struct saga_ring *r)
{
	return smp_load_acquire(&r->head) - READ_ONCE(r->tail);
}

/* Copy @len bytes into the ring at @pos, wrapping at the end. */
static void ring_put(struct saga_ring *r, unsigned long pos, const void *src, unsigned int len)
{
	unsigned int off = pos & ring_mask();
	unsigned int first = min(len, saga_ring_bytes - off);

	memcpy(r->data + off, src, first);
	if (first < len)
		memcpy(r->data, src + first, len - first);
}

bool saga_ring_write(const void *rec, unsigned int size)
{
	struct saga_ring *r = this_cpu_ptr(&saga_ring);
	unsigned long head = r->head;
	unsigned long used = head - smp_load_acquire(&r->tail);
	unsigned long mark = saga_ring_bytes / 4;

	if (saga_ring_bytes - used < size)
		return false;
	ring_put(r, head, rec, size);
	smp_store_release(&r->head, head + size);
	/* Wake when this write crosses the mark; the timer covers the rest. */
	if (used < mark && used + size >= mark && wq_has_sleeper(&saga_wait))
		irq_work_queue(&saga_wake_work);
	return true;
}

static bool rings_have_data(void)
{
	int cpu;

	for_each_possible_cpu(cpu)
		if (ring_used(per_cpu_ptr(&saga_ring, cpu)))
			return true;
	return false;
}

u64 saga_rings_used(void)
{
	u64 n = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		n += ring_used(per_cpu_ptr(&saga_ring, cpu));
	return n;
}

static void saga_wake_fn(struct irq_work *w)
{
	wake_up_interruptible(&saga_wait);
}

static void saga_wake_tick(struct timer_list *t)
{
	if (rings_have_data())
		wake_up_interruptible(&saga_wait);
	if (wq_has_sleeper(&saga_wait))
		mod_timer(&saga_wake_timer, jiffies + msecs_to_jiffies(SAGA_WAKE_MS));
}

static void arm_wake_timer(void)
{
	if (!timer_pending(&saga_wake_timer))
		mod_timer(&saga_wake_timer, jiffies + msecs_to_jiffies(SAGA_WAKE_MS));
}

/*
 * Copy whole records of one ring to user space, at most @room bytes.
 * Returns bytes copied, or -EFAULT / -EINVAL (first record too big for
 * an empty buffer: the caller decides).
 */
static ssize_t ring_read(struct saga_ring *r, char __user *buf, size_t room, unsigned int *records)
{
	unsigned long head = smp_load_acquire(&r->head);
	unsigned long tail = r->tail;
	size_t done = 0;

	while (tail != head) {
		unsigned int off = tail & ring_mask();
		unsigned int size = ((struct saga_event *)(r->data + off))->size;
		unsigned int first = min_t(unsigned int, size, saga_ring_bytes - off);

		if (WARN_ON_ONCE(size < sizeof(struct saga_event) || (size & 7)))
			return -EIO;

		if (size > room - done) {
			if (!done)
				return -EINVAL;
			break;
		}
		if (copy_to_user(buf + done, r->data + off, first) ||
		    (first < size && copy_to_user(buf + done + first, r->data, size - first)))
			return -EFAULT;
		done += size;
		tail += size;
		(*records)++;
	}
	smp_store_release(&r->tail, tail);
	return done;
}

static ssize_t rings_read_once(char __user *buf, size_t count)
{
	unsigned int records = 0, i, n = nr_cpu_ids;
	size_t done = 0;
	ssize_t got = 0;
	bool too_small = false;

	for (i = 0; i < n && done < count; i++) {
		unsigned int cpu = (saga_next_cpu + i) % n;

		if (!cpu_possible(cpu))
			continue;
		got = ring_read(per_cpu_ptr(&saga_ring, cpu), buf + done, count - done, &records);
		if (got == -EINVAL) {
			/* Does not fit what is left; stop if the buffer is too small for it. */
			too_small = !done;
			if (too_small)
				break;
			continue;
		}
		if (got < 0)
			break;
		done += got;
	}
	saga_next_cpu = (saga_next_cpu + 1) % n;
	atomic64_add(records, &saga_read_events);
	if (done)
		return done;
	if (too_small)
		return -EINVAL;
	return got < 0 ? got : 0;
}

/* Sleep until a ring has data; the timer is armed once we are on the queue. */
static int wait_for_data(void)
{
	DEFINE_WAIT(w);
	int ret = 0;

	for (;;) {
		prepare_to_wait(&saga_wait, &w, TASK_INTERRUPTIBLE);
		if (rings_have_data())
			break;
		if (signal_pending(current)) {
			ret = -ERESTARTSYS;
			break;
		}
		arm_wake_timer();
		schedule();
	}
	finish_wait(&saga_wait, &w);
	return ret;
}

ssize_t saga_rings_read(char __user *buf, size_t count, bool nonblock)
{
	ssize_t ret;

	if (count < sizeof(struct saga_event))
		return -EINVAL;
	for (;;) {
		if (mutex_lock_interruptible(&saga_read_mutex))
			return -ERESTARTSYS;
		ret = rings_read_once(buf, count);
		mutex_unlock(&saga_read_mutex);
		if (ret)
			return ret;
		if (nonblock)
			return -EAGAIN;
		ret = wait_for_data();
		if (ret)
			return ret;
	}
}

__poll_t saga_rings_poll(struct file *file, struct poll_table_struct *wait)
{
	poll_wait(file, &saga_wait, wait);
	if (rings_have_data())
		return EPOLLIN | EPOLLRDNORM;
	arm_wake_timer();
	return 0;
}

int saga_rings_init(void)
{
	int cpu;

	for_each_possible_cpu(cpu) {
		struct saga_ring *r = per_cpu_ptr(&saga_ring, cpu);

		r->head = r->tail = 0;
		r->data = vmalloc_node(saga_ring_bytes, cpu_to_node(cpu));
		if (!r->data) {
			saga_rings_exit();
			return -ENOMEM;
		}
	}
	init_irq_work(&saga_wake_work, saga_wake_fn);
	timer_setup(&saga_wake_timer, saga_wake_tick, 0);
	return 0;
}

void saga_rings_exit(void)
{
	int cpu;

	irq_work_sync(&saga_wake_work);
	timer_delete_sync(&saga_wake_timer);
	for_each_possible_cpu(cpu) {
		struct saga_ring *r = per_cpu_ptr(&saga_ring, cpu);

		vfree(r->data);
		r->data = NULL;
	}
}

/*
 * Readers: the thread groups with /dev/saga open are not logged (their
 * calls are still counted), or reading the log would fill it.
 */
int saga_reader_add(u32 tgid)
{
	int i, free = -1, ret = 0;

	mutex_lock(&saga_reader_mutex);
	for (i = 0; i < SAGA_MAX_READERS; i++) {
		if (saga_reader_refs[i] && saga_reader_tgid[i] == tgid)
			break;
		if (!saga_reader_refs[i] && free < 0)
			free = i;
	}
	if (i == SAGA_MAX_READERS) {
		if (free < 0) {
			ret = -EMFILE;	/* not excluded: the caller still works */
			goto out;
		}
		i = free;
		WRITE_ONCE(saga_reader_tgid[i], tgid);
	}
	saga_reader_refs[i]++;
out:
	mutex_unlock(&saga_reader_mutex);
	return ret;
}

void saga_reader_del(u32 tgid)
{
	int i;

	mutex_lock(&saga_reader_mutex);
	for (i = 0; i < SAGA_MAX_READERS; i++) {
		if (saga_reader_refs[i] && saga_reader_tgid[i] == tgid) {
			if (!--saga_reader_refs[i])
				WRITE_ONCE(saga_reader_tgid[i], 0);
			break;
		}
	}
	mutex_unlock(&saga_reader_mutex);
}

unsigned int saga_readers(void)
{
	unsigned int i, n = 0;

	for (i = 0; i < SAGA_MAX_READERS; i++)
		n += READ_ONCE(saga_reader_refs[i]) != 0;
	return n;
}
