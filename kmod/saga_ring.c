// SPDX-License-Identifier: GPL-2.0
/*
 * saga: per-CPU event rings and the readers of /dev/saga.
 *
 * One byte ring per CPU of variable-size records (8-byte aligned, so no
 * aligned 8-byte field of a record wraps).  The producer is the probe
 * running on that CPU with preemption disabled, the consumer is read()
 * under saga_read_mutex: head and tail are each written by one side only
 * and published with release/acquire.  A full ring drops the record (counted).
 *
 * read() merges the rings by each record's write time (its key: ts_ns +
 * duration_ns, CLOCK_REALTIME when the probe took its clock at exit, or at
 * entry for the calls logged there).  So that a record can never come out
 * after a later one, even across reads, a producer makes its seq odd before
 * it reads the clock and even again once the record is published (or
 * dropped); a read takes its watermark W from the clock first, waits out
 * any write in progress, then snapshots the heads: every record not in the
 * snapshot read the clock after W.  Records of the snapshot later than W
 * (written during it) wait for the next read.  docs/kernel-abi.md states
 * the guarantee.
 *
 * Wake-ups are batched: a producer whose write takes the fill past the
 * wake mark queues an irq_work (safe from probe context, and on
 * PREEMPT_RT runs where sleeping locks are allowed), and a timer checks
 * every SAGA_WAKE_MS while someone waits, so a lone event reaches a
 * sleeping reader quickly without one wake-up per event.
 */
#include <linux/vmalloc.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
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
	unsigned long seq;	/* producer: odd from before a record's timestamp to its publication */
	char *data;
};

/* A ring in the merge: its next record (at tail, up to the snapshot's head) and its key. */
struct saga_cursor {
	u64 key;
	unsigned long tail, head;
	struct saga_ring *r;
	unsigned int size;
	unsigned int cpu;
};

static DEFINE_PER_CPU(struct saga_ring, saga_ring);
static DEFINE_MUTEX(saga_read_mutex);
static DECLARE_WAIT_QUEUE_HEAD(saga_wait);
static struct irq_work saga_wake_work;
static struct timer_list saga_wake_timer;
static struct saga_cursor *saga_heap;	/* nr_cpu_ids, a min-heap by key; under saga_read_mutex */

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

void saga_ring_begin(void)
{
	struct saga_ring *r = this_cpu_ptr(&saga_ring);

	WRITE_ONCE(r->seq, r->seq + 1);
	/* The caller's clock read comes after a reader can see the write begun
	 * (pairs with the smp_mb() after the watermark in rings_snapshot()). */
	smp_mb();
}

bool saga_ring_write(const void *rec, unsigned int size)
{
	struct saga_ring *r = this_cpu_ptr(&saga_ring);
	unsigned long head = r->head;
	unsigned long used = head - smp_load_acquire(&r->tail);
	unsigned long mark = saga_ring_bytes / 4;
	bool room = saga_ring_bytes - used >= size;

	WARN_ON_ONCE(!(r->seq & 1));	/* saga_ring_begin() was not called */
	if (room) {
		ring_put(r, head, rec, size);
		smp_store_release(&r->head, head + size);
	}
	smp_store_release(&r->seq, r->seq + 1);	/* after the head: a reader that sees it sees the record */
	if (!room)
		return false;
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
 * The record at @c->tail: its size, checked against what the snapshot
 * holds, and its key.  1: loaded; 0: the ring has nothing more up to the
 * snapshot; -EIO: a corrupt record.  An aligned u64 of the record never
 * wraps, the 16-bit size at its start neither.
 */
static int cursor_load(struct saga_cursor *c)
{
	const char *data = c->r->data;
	unsigned long off = c->tail & ring_mask();
	unsigned int size;

	BUILD_BUG_ON(offsetof(struct saga_event, ts_ns) % 8 || offsetof(struct saga_event, duration_ns) % 8);
	if (c->tail == c->head)
		return 0;
	size = ((const struct saga_event *)(data + off))->size;
	if (WARN_ON_ONCE(size < sizeof(struct saga_event) || (size & 7) || size > c->head - c->tail))
		return -EIO;
	c->size = size;
	c->key = *(const u64 *)(data + ((off + offsetof(struct saga_event, ts_ns)) & ring_mask())) +
		 *(const u64 *)(data + ((off + offsetof(struct saga_event, duration_ns)) & ring_mask()));
	return 1;
}

static bool cursor_before(const struct saga_cursor *a, const struct saga_cursor *b)
{
	return a->key < b->key || (a->key == b->key && a->cpu < b->cpu);
}

static void heap_down(struct saga_cursor *h, unsigned int n, unsigned int i)
{
	for (;;) {
		unsigned int l = 2 * i + 1, m = i;

		if (l < n && cursor_before(&h[l], &h[m]))
			m = l;
		if (l + 1 < n && cursor_before(&h[l + 1], &h[m]))
			m = l + 1;
		if (m == i)
			return;
		swap(h[i], h[m]);
		i = m;
	}
}

/*
 * A record of the snapshot is held for the next read when its key is
 * after the watermark @w but not after @w2, the clock once the heads were
 * read: it was written during the snapshot.  A key after @w2 was written
 * before CLOCK_REALTIME was stepped back: it is merged as it is.
 */
static bool held(u64 key, u64 w, u64 w2)
{
	return key > w && key <= w2;
}

/*
 * Fill the heap with the rings that have a record to return now, and set
 * the watermarks @w, @w2 for held(); *@held_any says whether some ring's
 * next record was held.  Returns the heap's size, or -EIO.
 */
static int rings_snapshot(u64 *w, u64 *w2, bool *held_any)
{
	unsigned int n = 0, i;
	int cpu, ret;

	*held_any = false;
	*w = ktime_get_real_ns();
	smp_mb();	/* the seq loads come after the watermark (see saga_ring_begin()) */
	for_each_possible_cpu(cpu) {
		struct saga_ring *r = per_cpu_ptr(&saga_ring, cpu);
		struct saga_cursor *c = &saga_heap[n];
		unsigned long seq = smp_load_acquire(&r->seq);

		/* A write in progress may hold a key before w: wait until it is
		 * published (the probe holds its CPU with preemption disabled, so
		 * not long).  A write begun since read its clock after w. */
		if (seq & 1)
			while (smp_load_acquire(&r->seq) == seq)
				cpu_relax();
		c->r = r;
		c->cpu = cpu;
		c->head = smp_load_acquire(&r->head);
		c->tail = r->tail;
		ret = cursor_load(c);
		if (ret < 0)
			return ret;
		n += ret;
	}
	*w2 = ktime_get_real_ns();
	for (i = 0; i < n; ) {
		if (held(saga_heap[i].key, *w, *w2)) {
			*held_any = true;
			saga_heap[i] = saga_heap[--n];
		} else {
			i++;
		}
	}
	for (i = n / 2; i-- > 0; )
		heap_down(saga_heap, n, i);
	return n;
}

/* Copy @len bytes of @r from @pos to user space, wrapping at the ring's end. */
static int ring_copy_out(const struct saga_ring *r, unsigned long pos, char __user *dst, size_t len)
{
	unsigned long off = pos & ring_mask();
	size_t first = min_t(size_t, len, saga_ring_bytes - off);

	if (copy_to_user(dst, r->data + off, first) ||
	    (first < len && copy_to_user(dst + first, r->data, len - first)))
		return -EFAULT;
	return 0;
}

/* The ring whose record comes after the heap's top one: one of its children. */
static const struct saga_cursor *heap_second(unsigned int n)
{
	if (n < 2)
		return NULL;
	if (n == 2 || cursor_before(&saga_heap[1], &saga_heap[2]))
		return &saga_heap[1];
	return &saga_heap[2];
}

/*
 * Copy whole records to user space, at most @count bytes, the earliest key
 * first across every ring.  The top ring's records that come before every
 * other ring's next one go in one copy.  Records copied are consumed even
 * when a later copy fails.
 */
static ssize_t rings_read_once(char __user *buf, size_t count)
{
	unsigned int records = 0, i;
	size_t done = 0;
	ssize_t err = 0;
	bool held_any;
	u64 w, w2;
	int n, tries;

	/* One retry: what the first snapshot held is older than the second's watermark. */
	for (tries = 0; ; tries++) {
		n = rings_snapshot(&w, &w2, &held_any);
		if (n || !held_any || tries)
			break;
	}
	if (n < 0)
		return n;
	while (n > 0) {
		struct saga_cursor *c = &saga_heap[0];
		const struct saga_cursor *next = heap_second(n);
		unsigned long start = c->tail;
		unsigned int recs = 0;
		size_t run = 0;
		bool full = false, gone = false;
		int ret;

		do {
			if (c->size > count - done - run) {
				full = true;
				break;
			}
			run += c->size;
			recs++;
			c->tail += c->size;
			ret = cursor_load(c);
			if (ret < 0) {
				err = ret;	/* the run up to the bad record still goes */
				break;
			}
			gone = !ret || held(c->key, w, w2);
		} while (!gone && !(next && cursor_before(next, c)));
		if (run && ring_copy_out(c->r, start, buf + done, run)) {
			c->tail = start;
			err = -EFAULT;
			break;
		}
		done += run;
		records += recs;
		if (full || err) {
			if (full && !done)
				err = -EINVAL;	/* the next record does not fit an empty buffer */
			break;
		}
		if (gone) {
			smp_store_release(&c->r->tail, c->tail);
			saga_heap[0] = saga_heap[--n];
		}
		heap_down(saga_heap, n, 0);
	}
	/* The rings still in the heap give back the room of what was copied. */
	for (i = 0; i < n; i++)
		smp_store_release(&saga_heap[i].r->tail, saga_heap[i].tail);
	atomic64_add(records, &saga_read_events);
	return done ? done : err;
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

	saga_heap = kvmalloc_array(nr_cpu_ids, sizeof(*saga_heap), GFP_KERNEL);
	if (!saga_heap)
		return -ENOMEM;
	for_each_possible_cpu(cpu) {
		struct saga_ring *r = per_cpu_ptr(&saga_ring, cpu);

		r->head = r->tail = r->seq = 0;
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
	kvfree(saga_heap);
	saga_heap = NULL;
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
