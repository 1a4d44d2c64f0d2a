// SPDX-License-Identifier: GPL-2.0
/*
 * saga: entry state, kept from sys_enter to sys_exit for calls that may
 * be logged (timestamp, arguments, paths: execve's filename is gone by
 * exit).
 *
 * A preallocated open-addressing table keyed by the task pointer, which
 * survives the tid change of a non-leader execve.  No locks: an entry is
 * claimed by cmpxchg from NULL (or from its stale owner) to SAGA_ENTRY_BUSY,
 * filled, then published with the owner's pointer; sys_exit takes it back
 * by cmpxchg owner -> BUSY, copies it out and frees it.  When a task's
 * probe window is full the oldest entry in it is taken over: its owner
 * then logs without entry state (NO_ENTER), as when the table is full.
 */
#include <linux/vmalloc.h>
#include <linux/hash.h>
#include <linux/log2.h>

#include "saga.h"

#define SAGA_ENTRY_BUSY		((struct task_struct *)1UL)
#define SAGA_ENTRY_WINDOW	16	/* slots probed per task */

static struct saga_entry *saga_table;
static unsigned int saga_table_bits;

int saga_entries_init(void)
{
	saga_table_bits = ilog2(saga_entries);
	saga_table = vzalloc(array_size(saga_entries, sizeof(*saga_table)));
	return saga_table ? 0 : -ENOMEM;
}

void saga_entries_exit(void)
{
	vfree(saga_table);
	saga_table = NULL;
}

void saga_entries_clear(void)
{
	unsigned int i;

	for (i = 0; i < saga_entries; i++)
		WRITE_ONCE(saga_table[i].task, NULL);
}

unsigned int saga_entries_used(void)
{
	unsigned int i, n = 0;

	for (i = 0; i < saga_entries; i++)
		n += READ_ONCE(saga_table[i].task) != NULL;
	return n;
}

static inline struct saga_entry *slot_at(unsigned long h, unsigned int i)
{
	return &saga_table[(h + i) & (saga_entries - 1)];
}

/* A free entry (or the task's own stale one, or the oldest), claimed BUSY. */
struct saga_entry *saga_entry_claim(struct task_struct *task)
{
	unsigned long h = hash_ptr(task, saga_table_bits);
	struct saga_entry *pick = NULL, *oldest = NULL;
	struct task_struct *seen = NULL, *oldest_owner = NULL;
	unsigned int i;

	for (i = 0; i < SAGA_ENTRY_WINDOW; i++) {
		struct saga_entry *e = slot_at(h, i);
		struct task_struct *owner = READ_ONCE(e->task);

		if (owner == task) {	/* left over by a call whose exit did not need it */
			pick = e;
			seen = owner;
			break;
		}
		if (!owner && !pick) {
			pick = e;
			seen = NULL;
		} else if (owner && owner != SAGA_ENTRY_BUSY &&
			   (!oldest || READ_ONCE(e->mono_ns) < READ_ONCE(oldest->mono_ns))) {
			oldest = e;
			oldest_owner = owner;
		}
	}
	if (!pick) {
		pick = oldest;
		seen = oldest_owner;
	}
	if (!pick || cmpxchg(&pick->task, seen, SAGA_ENTRY_BUSY) != seen)
		return NULL;
	return pick;
}

void saga_entry_publish(struct saga_entry *e, struct task_struct *task)
{
	e->start_time = task->start_time;
	smp_store_release(&e->task, task);
}

/* The task's entry, claimed BUSY for reading; NULL when there is none. */
struct saga_entry *saga_entry_take(struct task_struct *task)
{
	unsigned long h = hash_ptr(task, saga_table_bits);
	unsigned int i;

	for (i = 0; i < SAGA_ENTRY_WINDOW; i++) {
		struct saga_entry *e = slot_at(h, i);

		if (READ_ONCE(e->task) != task)
			continue;
		if (cmpxchg_acquire(&e->task, task, SAGA_ENTRY_BUSY) != task)
			return NULL;	/* taken over by another task just now */
		if (e->start_time != task->start_time) {	/* a dead task's, same pointer */
			saga_entry_release(e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

void saga_entry_release(struct saga_entry *e)
{
	smp_store_release(&e->task, NULL);
}
