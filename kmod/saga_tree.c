// SPDX-License-Identifier: GPL-2.0
/*
 * saga: the marks of tree rules (docs/kernel-abi.md, "tree").
 *
 * When a task forks while a tree rule is in force and the parent matches
 * the rule's process fields or carries its mark, the child is marked with
 * the rule's id for its life.  Marks live in a preallocated
 * open-addressing table keyed by the task pointer (and its start time,
 * against pointer reuse), like the entry table: a slot is claimed by
 * cmpxchg from NULL to SAGA_MARK_BUSY, filled, then published with the
 * owner's pointer.  Only the owner reads its marks (its own calls), its
 * parent writes them once before the child runs, and sched_process_free
 * releases them once the task is gone: no slot is read while it changes.
 * A child that finds no free slot in its window, or more tree rules than
 * SAGA_TREE_MARKS, loses the marks that do not fit (counted: tree_drops).
 */
#include <linux/vmalloc.h>
#include <linux/hash.h>
#include <linux/log2.h>

#include "saga.h"

#define SAGA_MARK_BUSY		((struct task_struct *)1UL)
#define SAGA_MARK_WINDOW	16	/* slots probed per task */

struct saga_mark {
	struct task_struct *task;	/* owner; NULL free; SAGA_MARK_BUSY being written */
	u64 start_time;
	u32 ids[SAGA_TREE_MARKS];	/* rule ids; 0 = free */
};

static struct saga_mark *saga_marks;
static unsigned int saga_marks_bits;
static atomic_t saga_marks_used;	/* lets every free and lookup skip the table while it is empty */

int saga_tree_init(void)
{
	saga_marks_bits = ilog2(saga_tree_tasks);
	saga_marks = vzalloc(array_size(saga_tree_tasks, sizeof(*saga_marks)));
	return saga_marks ? 0 : -ENOMEM;
}

void saga_tree_exit(void)
{
	vfree(saga_marks);
	saga_marks = NULL;
}

unsigned int saga_tree_used(void)
{
	return atomic_read(&saga_marks_used);
}

static inline struct saga_mark *slot_at(unsigned long h, unsigned int i)
{
	return &saga_marks[(h + i) & (saga_tree_tasks - 1)];
}

static struct saga_mark *mark_find(struct task_struct *task)
{
	unsigned long h = hash_ptr(task, saga_marks_bits);
	unsigned int i;

	if (!atomic_read(&saga_marks_used))
		return NULL;
	for (i = 0; i < SAGA_MARK_WINDOW; i++) {
		struct saga_mark *m = slot_at(h, i);

		if (smp_load_acquire(&m->task) == task && m->start_time == task->start_time)
			return m;
	}
	return NULL;
}

bool saga_tree_marked(struct task_struct *task, u32 id)
{
	const struct saga_mark *m = mark_find(task);
	unsigned int i;

	if (!m)
		return false;
	for (i = 0; i < SAGA_TREE_MARKS; i++)
		if (m->ids[i] == id)
			return true;
	return false;
}

static struct saga_mark *mark_claim(struct task_struct *task)
{
	unsigned long h = hash_ptr(task, saga_marks_bits);
	unsigned int i;

	for (i = 0; i < SAGA_MARK_WINDOW; i++) {
		struct saga_mark *m = slot_at(h, i);

		if (!READ_ONCE(m->task) && !cmpxchg(&m->task, NULL, SAGA_MARK_BUSY))
			return m;
	}
	return NULL;
}

void saga_tree_fork(const struct saga_ruleset *rs, struct task_struct *parent, struct task_struct *child)
{
	const struct saga_mark *pm = mark_find(parent);
	u32 ids[SAGA_TREE_MARKS] = { 0 };
	unsigned int i, j, n = 0, lost = 0;
	struct saga_mark *m;

	for (i = 0; i < rs->count; i++) {
		const struct saga_rule *r = &rs->rules[i];
		bool in = false;

		if (!(r->match & SAGA_MATCH_TREE))
			continue;
		for (j = 0; pm && j < SAGA_TREE_MARKS && !in; j++)
			in = pm->ids[j] == r->id;
		if (!in && !saga_rule_process_fields(r, parent))
			continue;
		if (n < SAGA_TREE_MARKS)
			ids[n++] = r->id;
		else
			lost++;
	}
	if (n) {
		m = mark_claim(child);
		if (m) {
			memcpy(m->ids, ids, sizeof(ids));
			m->start_time = child->start_time;
			atomic_inc(&saga_marks_used);
			smp_store_release(&m->task, child);
		} else {
			lost += n;
		}
	}
	if (lost)
		this_cpu_add(saga_stats->tree_drops, lost);
}

/* The task is gone (sched_process_free): its slot is free again. */
void saga_tree_free(struct task_struct *task)
{
	struct saga_mark *m = mark_find(task);

	if (!m)
		return;
	atomic_dec(&saga_marks_used);
	smp_store_release(&m->task, NULL);
}
