// SPDX-License-Identifier: GPL-2.0
/*
 * saga eBPF driver: counts every system call and logs the ones the rules
 * say to log, with the semantics of docs/capture.md (the kernel module
 * implements the same).  Loaded, pinned and driven by
 * src/saga/drivers/ebpf/; the layouts shared with it are in saga_bpf.h.
 *
 * sys_exit counts a completed call and emits its record.  sys_enter keeps
 * entry state (time, arguments, paths, the aux read at entry) for calls
 * that may be logged; user space attaches it only while the rule set can
 * log something, so counting alone costs one program per call.  The calls
 * sys_exit cannot attribute (exit, exit_group, (rt_)sigreturn: see
 * noreturn_call) are counted and logged as at entry, whether sys_enter is
 * attached or not.  sched_process_fork marks the children of processes in
 * a tree rule's tree.
 *
 * A call's action is one byte of the per-slot table in slot_actions; only
 * slots that a rule with fields covers look up the rule list and walk it.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "saga_kernel_types.h"
#include "saga_bpf.h"
#include "saga_syscalls.h"

char LICENSE[] SEC("license") = "GPL";

/* Global state (the .bss map); user space maps it read-write. */
struct saga_bpf_config saga_config;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct saga_bpf_pcpu);
} counters SEC(".maps");

struct ruleset_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	/* A size, not a type: clang would emit only a forward declaration. */
	__uint(value_size, sizeof(struct saga_bpf_ruleset));
};

/*
 * The rule set, twice over (saga_bpf.h): entry config.actions of both maps
 * is in force; user space prepares the other entry of each and switches
 * the index (docs/ebpf.md, "Rule changes").
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct saga_bpf_actions);
} slot_actions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct ruleset_map);
} rules SEC(".maps");

/* Size set by the loader before load (a power of two, in bytes). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 23);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct saga_bpf_entry);
} entries SEC(".maps");

/* Tree marks (docs/kernel-abi.md, "tree"): made at fork, freed with the task. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct saga_bpf_marks);
} marks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct saga_bpf_entry);
} scratch SEC(".maps");

static const __u32 zero;

/* Who is calling, read once per call and only as far as a rule needs it. */
#define CALLER_IDS	1
#define CALLER_EXE	2
#define CALLER_MARKS	4

struct caller {
	__u32 tgid;
	__u32 uid;
	__u64 comm[2];
	__u64 exe_ino;
	__u32 exe_dev;
	__u32 known;		/* CALLER_* loaded */
	__u32 marks[SAGA_TREE_MARKS];
};

static __always_inline void caller_ids(struct caller *c)
{
	if (c->known & CALLER_IDS)
		return;
	c->tgid = bpf_get_current_pid_tgid() >> 32;
	c->uid = (__u32)bpf_get_current_uid_gid();
	c->comm[0] = c->comm[1] = 0;
	bpf_get_current_comm(c->comm, sizeof(c->comm));
	c->known |= CALLER_IDS;
}

/* The executable's identity: mm->exe_file's inode (0/0 for a task without one). */
static __always_inline void caller_exe(struct caller *c)
{
	struct task_struct *task;
	struct mm_struct *mm;
	struct file *file;
	struct inode *inode;

	if (c->known & CALLER_EXE)
		return;
	c->known |= CALLER_EXE;
	c->exe_ino = 0;
	c->exe_dev = 0;
	task = bpf_get_current_task_btf();
	mm = task->mm;
	if (!mm)
		return;
	file = mm->exe_file;
	if (!file)
		return;
	inode = file->f_inode;
	if (!inode)
		return;
	c->exe_ino = inode->i_ino;
	c->exe_dev = inode->i_sb->s_dev;
}

static __always_inline void caller_marks(struct caller *c)
{
	struct saga_bpf_marks *m;

	if (c->known & CALLER_MARKS)
		return;
	c->known |= CALLER_MARKS;
	m = bpf_task_storage_get(&marks, bpf_get_current_task_btf(), 0, 0);
#pragma unroll
	for (int i = 0; i < SAGA_TREE_MARKS; i++)
		c->marks[i] = m ? m->ids[i] : 0;
}

/* The rule's process fields (pid, uid, comm, exe) all hold for the caller. */
static __always_inline int fields_match(const struct saga_rule *r, struct caller *c)
{
	__u16 m = r->match;

	if (m & (SAGA_MATCH_PID | SAGA_MATCH_UID | SAGA_MATCH_COMM)) {
		caller_ids(c);
		if ((m & SAGA_MATCH_PID) && r->pid != c->tgid)
			return 0;
		if ((m & SAGA_MATCH_UID) && r->uid != c->uid)
			return 0;
		if (m & SAGA_MATCH_COMM) {
			const __u64 *want = (const __u64 *)r->comm;

			if (want[0] != c->comm[0] || want[1] != c->comm[1])
				return 0;
		}
	}
	if (m & SAGA_MATCH_EXE) {
		caller_exe(c);
		if (r->exe_ino != c->exe_ino || r->exe_dev != c->exe_dev)
			return 0;
	}
	return 1;
}

static __always_inline int marked(struct caller *c, __u32 id)
{
	caller_marks(c);
#pragma unroll
	for (int i = 0; i < SAGA_TREE_MARKS; i++)
		if (c->marks[i] == id)
			return 1;
	return 0;
}

/* The process part of a rule: its fields, or for a tree rule its mark. */
static __always_inline int process_matches(const struct saga_rule *r, struct caller *c)
{
	if (!(r->match & SAGA_MATCH_PROCESS))
		return 1;
	if (fields_match(r, c))
		return 1;
	return (r->match & SAGA_MATCH_TREE) && marked(c, r->id);
}

static __always_inline __u32 slot_of(long nr, int compat)
{
	if (compat) {
		if (nr >= 0 && nr < SAGA_NR_IA32)
			return saga_ia32_slot[nr];
		return SAGA_NR_UNKNOWN;
	}
	if (nr >= 0 && nr < SAGA_COMPAT_BASE)
		return nr;
	return SAGA_NR_UNKNOWN;
}

/* ret_known == 0: decide whether the call may be logged, whatever it returns. */
struct walk {
	struct saga_bpf_ruleset *rs;
	struct caller who;
	__u32 first;
	__u32 slot;
	long ret;
	int ret_known;
	int action;
	__u32 rule;
};

static long walk_step(__u32 i, void *data)
{
	struct walk *w = data;
	struct saga_bpf_ruleset *rs = w->rs;
	__u32 idx = w->first + i;
	struct saga_rule *r;
	__u32 slot = w->slot & (SAGA_NR_SLOTS - 1);

	if (idx >= rs->nr_rules)
		return 1;
	/* nr_rules <= SAGA_MAX_RULES; the mask proves it to the verifier. */
	r = &rs->rules[idx & (SAGA_MAX_RULES - 1)];
	if (!(r->syscalls[slot >> 6] & (1ULL << (slot & 63))))
		return 0;
	if (!process_matches(r, &w->who))
		return 0;
	if (r->match & SAGA_MATCH_ERRORS) {
		if (!w->ret_known) {
			/* A failure would take this rule's action, a success goes on. */
			if (r->action == SAGA_ACT_LOG) {
				w->action = SAGA_ACT_LOG;
				return 1;
			}
			return 0;
		}
		if (w->ret >= 0)
			return 0;
	}
	w->action = r->action;
	w->rule = r->id;
	return 1;
}

static __always_inline struct saga_bpf_ruleset *ruleset(__u32 idx)
{
	void *inner = bpf_map_lookup_elem(&rules, &idx);

	return inner ? bpf_map_lookup_elem(inner, &zero) : 0;
}

/*
 * The slow path, for slots some rule with fields covers: the rule list of
 * the same entry idx, walked from the first rule its own per-slot table
 * names.  Not inlined, to keep the common path short.
 */
static __noinline int walk_rules(__u32 idx, __u32 slot, long ret, int ret_known, __u32 *rule)
{
	struct saga_bpf_ruleset *rs = ruleset(idx);
	struct walk w;
	__u16 v;

	if (!rs)
		return SAGA_ACT_LOG;
	v = rs->slot[slot & (SAGA_NR_SLOTS - 1)];
	if (!(v & SAGA_BPF_SLOT_WALK))
		return v;
	w.rs = rs;
	w.who.known = 0;
	w.first = v & SAGA_BPF_SLOT_INDEX;
	w.slot = slot;
	w.ret = ret;
	w.ret_known = ret_known;
	w.action = rs->default_action;
	w.rule = 0;
	bpf_loop(SAGA_MAX_RULES, walk_step, &w, 0);
	*rule = w.rule;
	return w.action;
}

/*
 * The action for a call in `slot`, and the id of the rule that decided it
 * when that action is log: one byte of the action table in force (an array
 * lookup the verifier inlines), or the walk.  The index is read once, so
 * the table and the list come from the same rule set.
 */
static __always_inline int action_of(__u32 slot, long ret, int ret_known, __u32 *rule)
{
	__u32 idx = *(volatile __u32 *)&saga_config.actions;
	struct saga_bpf_actions *t = bpf_map_lookup_elem(&slot_actions, &idx);
	__u8 v;

	if (!t)
		return SAGA_ACT_LOG;
	/* Keep the mask: the compiler may prove it redundant, the verifier cannot. */
	asm volatile("" : "+r"(slot));
	slot &= SAGA_NR_SLOTS - 1;
	v = t->slot[slot];
	if (v & SAGA_BPF_ACT_WALK)
		return walk_rules(idx, slot, ret, ret_known, rule);
	if (v == SAGA_ACT_LOG)
		*rule = t->rule[slot];
	return v;
}

/* Readers' own calls are counted, never logged. */
static __always_inline int is_consumer(__u32 tgid)
{
#pragma unroll
	for (int i = 0; i < SAGA_BPF_MAX_CONSUMERS; i++)
		if (saga_config.consumers[i] == tgid)
			return 1;
	return 0;
}

static __always_inline void count(struct saga_bpf_pcpu *pc, __u32 slot, long ret)
{
	struct saga_counter *c;

	/* Keep the mask: the compiler may prove it redundant, the verifier cannot. */
	asm volatile("" : "+r"(slot));
	c = &pc->slot[slot & (SAGA_NR_SLOTS - 1)];

	c->calls++;
	if (ret < 0)
		c->errors++;
}

static __always_inline void read_args(struct pt_regs *regs, int compat, __u64 *args)
{
	if (compat) {
		args[0] = (__u32)regs->bx;
		args[1] = (__u32)regs->cx;
		args[2] = (__u32)regs->dx;
		args[3] = (__u32)regs->si;
		args[4] = (__u32)regs->di;
		args[5] = (__u32)regs->bp;
	} else {
		args[0] = regs->di;
		args[1] = regs->si;
		args[2] = regs->dx;
		args[3] = regs->r10;
		args[4] = regs->r8;
		args[5] = regs->r9;
	}
}

/* execve's argv: whole strings, up to SAGA_AUX_ARGV_MAX bytes and SAGA_AUX_ARGV_ARGS strings. */
#define ARGV_BATCH	8	/* pointers read in one go: most calls have fewer arguments */

/*
 * A user-memory read costs ~40 ns here whatever its size (docs/benchmarks.md),
 * one from kernel memory ~13.  The strings of most argv arrays lie close
 * together (literals, a program's own argv, consecutive heap blocks), so
 * when the first pointers all start within ARGV_WINDOW bytes the window is
 * read once and each string taken from it by a kernel string read.  A
 * string the window does not hold whole, and every string when the window
 * read faults, is read from user memory as before: the blob is the same.
 */
#define ARGV_WINDOW	1024
#define ARGV_TAIL	256	/* bytes read past the last string's start */
#define ARGV_WINDOW_MIN	3	/* fewer strings: one read per string is as cheap */

struct argv_window {
	char buf[ARGV_WINDOW];
};

/* Per CPU: only saga_sys_enter uses it, and a program never nests on its CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct argv_window);
} argv_windows SEC(".maps");

struct argv_read {
	char *dst;
	__u64 argv;
	__u32 len;
	__u32 wide;		/* 8-byte pointers (native) or 4 (ia32) */
	__u16 flags;
	__u16 batched;		/* ptrs[] holds the first ARGV_BATCH pointers */
	__u32 wlen;		/* bytes of user memory at lo in win (0: no window) */
	__u64 lo;
	char *win;
	__u64 ptrs[ARGV_BATCH];
};

/* Pointer i of argv: from the batch read at the start, or one read of its own. */
static __always_inline int argv_ptr(struct argv_read *a, __u32 i, __u64 *p)
{
	if (a->batched && i < ARGV_BATCH) {
		*p = a->wide ? a->ptrs[i & (ARGV_BATCH - 1)] : ((__u32 *)a->ptrs)[i & (ARGV_BATCH - 1)];
		return 0;
	}
	return a->wide ? bpf_probe_read_user(p, 8, (const void *)(a->argv + 8 * i))
		       : bpf_probe_read_user(p, 4, (const void *)(a->argv + 4 * i));
}

/*
 * Read the window when the batched strings start within ARGV_WINDOW bytes
 * of each other; the call's path (extra, 0: none) joins them if it starts
 * within the same window (system()'s "/bin/sh" and "sh", literals).
 */
static __always_inline void argv_window(struct argv_read *a, __u64 extra)
{
	struct argv_window *w;
	__u64 lo = ~0ULL, hi = 0, p;
	__u32 n = 0, span;

#pragma unroll
	for (int i = 0; i < ARGV_BATCH; i++) {
		p = a->wide ? a->ptrs[i] : ((__u32 *)a->ptrs)[i];
		if (!p)
			break;
		if (p < lo)
			lo = p;
		if (p > hi)
			hi = p;
		n++;
	}
	if (hi - lo >= ARGV_WINDOW)
		return;
	if (extra && n && (extra < lo ? hi - extra : extra - lo) < ARGV_WINDOW) {
		if (extra < lo)
			lo = extra;
		if (extra > hi)
			hi = extra;
		n++;
	}
	if (n < ARGV_WINDOW_MIN)
		return;
	span = hi - lo + ARGV_TAIL;
	if (span > ARGV_WINDOW)
		span = ARGV_WINDOW;
	w = bpf_map_lookup_elem(&argv_windows, &zero);
	if (!w || bpf_probe_read_user(w->buf, span, (const void *)lo))
		return;	/* e.g. the window runs into an unmapped page: a read per string */
	a->win = w->buf;
	a->lo = lo;
	a->wlen = span;
}

/*
 * Copy the string at p to dst, at most room bytes with its NUL, as
 * bpf_probe_read_user_str does: from the window when it holds the string
 * whole, or as much of it as room takes; else from user memory.
 */
static __always_inline long window_str(struct argv_read *a, char *dst, __u32 room, __u64 p)
{
	__u64 off = p - a->lo;
	__u32 lim;
	long n;

	if (off < a->wlen) {
		lim = a->wlen - off;
		if (lim > room)
			lim = room;
		/* Keep the bound visible to the verifier (the compiler knows it already). */
		asm volatile("" : "+r"(lim));
		if (lim > SAGA_AUX_ARGV_MAX + 1)
			lim = SAGA_AUX_ARGV_MAX + 1;
		n = bpf_probe_read_kernel_str(dst, lim, a->win + (off & (ARGV_WINDOW - 1)));
		/* n == lim < room: the window ended before the string's NUL. */
		if (n > 0 && (n < lim || lim == room))
			return n;
	}
	return bpf_probe_read_user_str(dst, room, (const void *)p);
}

/*
 * Copy one path argument to buf; returns the bytes kept, its NUL included
 * (0: none).  A NULL pointer is no path, not a fault.
 */
static __always_inline __u32 read_path(struct saga_bpf_pcpu *pc, struct saga_event *ev, char *buf, __u64 uptr,
					struct argv_read *win)
{
	long n;

	if (!uptr)
		return 0;
	n = win ? window_str(win, buf, SAGA_BPF_PATH_READ, uptr)
		: bpf_probe_read_user_str(buf, SAGA_BPF_PATH_READ, (const void *)uptr);
	if (n < 0) {
		ev->flags |= SAGA_EVF_PATH_FAULT;
		pc->path_faults++;
		return 0;
	}
	if (n == 0) {	/* "": before 6.5 (or so) the helper counts no NUL for an empty string */
		buf[0] = 0;
		return 1;
	}
	if (n == SAGA_BPF_PATH_READ) {
		ev->flags |= SAGA_EVF_PATH_TRUNC;
		buf[SAGA_PATH_MAX - 1] = 0;
		return SAGA_PATH_MAX;
	}
	return n;
}

/* Argument i (0-based) of the record, 0 when out of range. */
static __always_inline __u64 arg_at(struct saga_event *ev, __u32 i)
{
	/* Keep the compiler from folding the check into the index math. */
	asm volatile("" : "+r"(i));
	if (i >= 6)
		return 0;
	return ev->args[i];
}

/* Paths of the call (per saga_slot_paths), copied right after the record's fixed part. */
static __always_inline void read_paths(struct saga_bpf_pcpu *pc, struct saga_bpf_entry *e, __u32 slot,
				       struct argv_read *win)
{
	__u8 spec = saga_slot_paths[slot & (SAGA_NR_SLOTS - 1)];
	__u32 len0 = 0, len1 = 0;

	if (spec & 0xf) {
		len0 = read_path(pc, &e->ev, e->data, arg_at(&e->ev, (spec & 0xf) - 1), win);
		if (len0 > SAGA_PATH_MAX)
			len0 = SAGA_PATH_MAX;
	}
	if (spec >> 4) {
		len1 = read_path(pc, &e->ev, e->data + (len0 & 0x1ff), arg_at(&e->ev, (spec >> 4) - 1),
				 win);
		if (len1 > SAGA_PATH_MAX)
			len1 = SAGA_PATH_MAX;
	}
	e->ev.path_len[0] = len0;
	e->ev.path_len[1] = len1;
}

/* Where the aux blob goes: after the paths (at most SAGA_BPF_AUX_AT bytes of them). */
static __always_inline char *aux_area(struct saga_bpf_entry *e)
{
	__u32 off = e->ev.path_len[0] + e->ev.path_len[1];

	if (off > SAGA_BPF_AUX_AT)
		off = SAGA_BPF_AUX_AT;
	return e->data + off;
}

static __always_inline void aux_fault(struct saga_bpf_pcpu *pc, struct saga_event *ev)
{
	ev->flags |= SAGA_EVF_AUX_FAULT;
	pc->aux_faults++;
}

static long argv_step(__u32 i, void *data)
{
	struct argv_read *a = data;
	__u64 p = 0;
	__u32 len = a->len;
	long n;

	if (argv_ptr(a, i, &p)) {
		a->flags |= SAGA_EVF_AUX_FAULT;
		return 1;
	}
	if (!p)
		return 1;
	if (i >= SAGA_AUX_ARGV_ARGS || len >= SAGA_AUX_ARGV_MAX) {
		a->flags |= SAGA_EVF_AUX_TRUNC;
		return 1;
	}
	/* One byte more room than may be kept: a string that fits is told from one that does not. */
	n = window_str(a, a->dst + (len & (SAGA_AUX_ARGV_MAX - 1)), SAGA_AUX_ARGV_MAX + 1 - len, p);
	if (n < 0) {
		a->flags |= SAGA_EVF_AUX_FAULT;
		return 1;
	}
	if (n == 0) {	/* "", from a helper that counts no NUL for it (as in read_path) */
		a->dst[len & (SAGA_AUX_ARGV_MAX - 1)] = 0;
		n = 1;
	}
	if (n > SAGA_AUX_ARGV_MAX - len) {
		a->flags |= SAGA_EVF_AUX_TRUNC;
		return 1;
	}
	a->len = len + n;
	return 0;
}

static __always_inline void set_aux_kind(struct saga_event *ev, __u16 spec)
{
	ev->flags |= (spec & 7) << SAGA_EVF_AUX_SHIFT;
}

/*
 * execve/execveat at entry: the argv pointers and the window first, so that
 * the path can come from the window too, then the paths, then the strings
 * (the aux blob follows the paths).
 */
static __always_inline void read_exec(struct saga_bpf_pcpu *pc, struct saga_bpf_entry *e, __u32 slot, __u16 spec,
				      int compat)
{
	__u64 argv = arg_at(&e->ev, SAGA_AUXSPEC_PTR(spec));
	__u8 paths = saga_slot_paths[slot & (SAGA_NR_SLOTS - 1)];
	struct argv_read a = { .argv = argv, .wide = !compat };

	if (argv) {
		/*
		 * One read for the first pointers instead of one per string.  It
		 * may fail where single reads would not (an array ending just
		 * before an unmapped page): then each pointer is read alone.
		 */
		a.batched = !bpf_probe_read_user(a.ptrs, a.wide ? 8 * ARGV_BATCH : 4 * ARGV_BATCH,
						 (const void *)argv);
		if (a.batched)
			argv_window(&a, (paths & 0xf) ? arg_at(&e->ev, (paths & 0xf) - 1) : 0);
	}
	read_paths(pc, e, slot, &a);
	set_aux_kind(&e->ev, spec);
	a.dst = aux_area(e);
	if (argv)
		bpf_loop(SAGA_AUX_ARGV_ARGS + 1, argv_step, &a, 0);
	if (a.flags & SAGA_EVF_AUX_FAULT)
		pc->aux_faults++;
	e->ev.flags |= a.flags;
	e->ev.aux_len = a.len & (2 * SAGA_AUX_MAX - 1);
}

/* A struct read whole: min(len, bound) bytes at ptr; longer is AUX_TRUNC. */
static __always_inline void read_blob(struct saga_bpf_pcpu *pc, struct saga_bpf_entry *e, __u64 ptr, __u32 len,
				      __u32 bound)
{
	__u32 n = len;

	if (n > bound) {
		n = bound;
		e->ev.flags |= SAGA_EVF_AUX_TRUNC;
	}
	n &= 0xff;	/* bounds are <= 128: proves it to the verifier */
	if (n && bpf_probe_read_user(aux_area(e), n, (const void *)ptr)) {
		aux_fault(pc, &e->ev);
		n = 0;
	}
	e->ev.aux_len = n;
}

/* The aux read at entry (saga_slot_aux; argv: read_exec), or for aux read at exit the buffer length it will have. */
static __always_inline void entry_aux(struct saga_bpf_pcpu *pc, struct saga_bpf_entry *e, __u16 spec, int compat)
{
	__u64 ptr = arg_at(&e->ev, SAGA_AUXSPEC_PTR(spec));
	__u64 len = arg_at(&e->ev, SAGA_AUXSPEC_LEN(spec));
	__u32 room = 0;

	if (spec & SAGA_AUXSPEC_EXIT) {
		if (ptr && len && !bpf_probe_read_user(&room, 4, (const void *)len))
			e->aux_room = room;
		return;
	}
	if (!ptr)
		return;	/* sendto on a connected socket: no address */
	set_aux_kind(&e->ev, spec);
	read_blob(pc, e, ptr, (__u32)len,
		  (spec & 7) == SAGA_AUX_CLONE_ARGS ? SAGA_AUX_CLONE_ARGS_MAX : SAGA_AUX_SOCKADDR_MAX);
}

/* The address accept/recvfrom returned: min(its length, the buffer's, the bound) bytes. */
static __always_inline void exit_aux(struct saga_bpf_pcpu *pc, struct saga_bpf_entry *e, __u32 slot)
{
	__u16 spec = saga_slot_aux[slot & (SAGA_NR_SLOTS - 1)];
	__u64 ptr = arg_at(&e->ev, SAGA_AUXSPEC_PTR(spec));
	__u64 lenp = arg_at(&e->ev, SAGA_AUXSPEC_LEN(spec));
	__u32 len = 0, room = e->aux_room;

	if (!(spec & SAGA_AUXSPEC_EXIT))
		return;
	set_aux_kind(&e->ev, spec);
	if (bpf_probe_read_user(&len, 4, (const void *)lenp)) {
		aux_fault(pc, &e->ev);
		return;
	}
	if (len > room) {
		e->ev.flags |= SAGA_EVF_AUX_TRUNC;
		read_blob(pc, e, ptr, room, SAGA_AUX_SOCKADDR_MAX);
		return;
	}
	read_blob(pc, e, ptr, len, SAGA_AUX_SOCKADDR_MAX);
}

/* Fill what is known only at the end of a call and put the record in the ring. */
static __always_inline void emit(struct task_struct *task, struct saga_bpf_pcpu *pc, struct saga_bpf_entry *e,
				 long ret, __u64 duration, __u32 rule)
{
	struct saga_event *ev = &e->ev;
	const struct cred *cred = task->cred;
	__u32 size, used;
	__u64 flags = BPF_RB_NO_WAKEUP, avail;

	used = ev->path_len[0] + ev->path_len[1] + ev->aux_len;
	if (used > SAGA_BPF_AUX_AT + SAGA_AUX_MAX)
		return;
	/* Zero the padding after the data (the buffer holds older bytes). */
	*(__u64 *)(e->data + used) = 0;
	size = (sizeof(*ev) + used + 7) & ~7U;
	ev->size = size;
	ev->cpu = bpf_get_smp_processor_id();
	ev->pid = task->tgid;
	ev->tid = task->pid;
	ev->ppid = task->real_parent->tgid;
	ev->uid = cred->uid.val;
	ev->gid = cred->gid.val;
	ev->ret = ret;
	ev->duration_ns = duration;
	ev->rule_id = rule;
	ev->cgroup_id = task->cgroups->dfl_cgrp->kn->id;
	/* The name as two loads (task->comm is NUL-padded); bpf_get_current_comm costs a copy loop. */
	*(__u64 *)&ev->comm[0] = *(__u64 *)&task->comm[0];
	*(__u64 *)&ev->comm[8] = *(__u64 *)&task->comm[8] & ~(0xffULL << 56);

	/*
	 * Wake readers once, when this record takes the ring past the mark: a
	 * wakeup is an irq_work (a self-IPI), far dearer than the record.  A
	 * reader that finds the ring empty sleeps; its periodic check and the
	 * next crossing wake it.
	 */
	avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (avail < saga_config.wake_bytes && avail + size >= saga_config.wake_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	/*
	 * One helper call (reserve, copy, commit) for every record: measured
	 * cheaper than reserve + an inline copy + submit, even at the fixed
	 * size most records have (docs/benchmarks.md).
	 */
	if (bpf_ringbuf_output(&events, ev, size & 0x7ff, flags)) {
		pc->drops++;
		return;
	}
	pc->events++;
}

/* The fixed part of a record as seen at entry: time, numbers, arguments. */
static __always_inline void start_record(struct saga_bpf_entry *e, struct pt_regs *regs, long nr, __u32 slot,
					 int compat, __u64 now)
{
	e->mono_ns = now;
	e->aux_room = 0;
	e->ev.ts_ns = now + saga_config.realtime_offset;
	e->ev.nr = slot;
	e->ev.orig_nr = nr;
	e->ev.flags = compat ? SAGA_EVF_COMPAT : 0;
	e->ev.path_len[0] = e->ev.path_len[1] = 0;
	e->ev.aux_len = 0;
	read_args(regs, compat, e->ev.args);
}

/*
 * Count (unless counted_elsewhere) and log a call handled at entry.  Who
 * calls it, so that each call is counted once whether sys_enter is
 * attached or not:
 * - native rt_sigreturn: saga_sigreturn, on its own syscall event, which
 *   runs for that call only (so counting needs no sys_enter program);
 * - exit, exit_group: sys_enter logs them, saga_task_exit counts them;
 * - ia32 sigreturn and rt_sigreturn: sys_enter (no per-call event exists
 *   for ia32 calls), so only while it is attached (docs/ebpf.md).
 */
static __always_inline void noreturn_call(struct pt_regs *regs, long nr, __u32 slot, int compat,
					  int counted_elsewhere)
{
	struct task_struct *task;
	struct saga_bpf_pcpu *pc;
	struct saga_bpf_entry *e;
	__u32 rule = 0;
	int action = action_of(slot, 0, 1, &rule);

	if (action == SAGA_ACT_IGNORE)
		return;
	pc = bpf_map_lookup_elem(&counters, &zero);
	if (!pc)
		return;
	if (!counted_elsewhere)
		count(pc, slot, 0);
	task = bpf_get_current_task_btf();
	if (action != SAGA_ACT_LOG || is_consumer(task->tgid))
		return;
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return;
	start_record(e, regs, nr, slot, compat, bpf_ktime_get_ns());
	e->ev.flags |= SAGA_EVF_NORETURN;
	emit(task, pc, e, 0, 0, rule);
}

SEC("tp_btf/sys_enter")
int saga_sys_enter(__u64 *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	long nr = (long)ctx[1];
	struct task_struct *task;
	struct saga_bpf_pcpu *pc;
	struct saga_bpf_entry *e;
	__u32 slot, rule;
	__u16 aux;
	int compat;

	if (!saga_config.enabled)
		return 0;
	task = bpf_get_current_task_btf();
	compat = task->thread_info.status & TS_COMPAT;
	slot = slot_of(nr, compat);

	if (saga_done_at_entry(slot)) {
		if (slot != SAGA_SLOT_RT_SIGRETURN || compat)	/* native rt_sigreturn: saga_sigreturn's */
			noreturn_call(regs, nr, slot, compat, slot == SAGA_SLOT_EXIT || slot == SAGA_SLOT_EXIT_GROUP);
		return 0;
	}
	if (action_of(slot, 0, 0, &rule) != SAGA_ACT_LOG || is_consumer(task->tgid)) {
		/* Drop state a previous call may have left (rules changed in between). */
		e = bpf_task_storage_get(&entries, task, 0, 0);
		if (e)
			e->valid = 0;
		return 0;
	}
	e = bpf_task_storage_get(&entries, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!e)
		return 0; /* no memory: logged at exit as NO_ENTER */
	start_record(e, regs, nr, slot, compat, bpf_ktime_get_ns());
	/* Most calls take no path and no aux: they need no counter (those count faults). */
	aux = saga_slot_aux[slot & (SAGA_NR_SLOTS - 1)];
	if (saga_slot_paths[slot & (SAGA_NR_SLOTS - 1)] || aux) {
		pc = bpf_map_lookup_elem(&counters, &zero);
		if (!pc)
			return 0;
		if ((aux & 7) == SAGA_AUX_ARGV && !(aux & SAGA_AUXSPEC_EXIT)) {
			read_exec(pc, e, slot, aux, compat);
		} else {
			read_paths(pc, e, slot, 0);
			if (aux)
				entry_aux(pc, e, aux, compat);
		}
	}
	e->valid = 1;
	return 0;
}

/* Every completed call: count it, and log it if the rules say so. */
SEC("tp_btf/sys_exit")
int saga_sys_exit(__u64 *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	long ret = (long)ctx[1];
	struct task_struct *task;
	struct saga_bpf_pcpu *pc;
	struct saga_bpf_entry *e;
	int compat, action;
	__u32 slot, rule = 0;
	long nr;

	if (!saga_config.enabled)
		return 0;
	task = bpf_get_current_task_btf();
	compat = task->thread_info.status & TS_COMPAT;
	nr = regs->orig_ax;
	if (nr == -1)	/* sigreturn's restored context, or a call a tracer skipped */
		return 0;
	slot = slot_of(nr, compat);
	if (ret == 0 && saga_fork_slot(slot))
		return 0;	/* a new task's return from fork: the call counts once, in the parent */
	action = action_of(slot, ret, 1, &rule);
	if (action == SAGA_ACT_IGNORE)
		return 0;
	pc = bpf_map_lookup_elem(&counters, &zero);
	if (!pc)
		return 0;
	count(pc, slot, ret);
	if (action != SAGA_ACT_LOG)
		return 0;

	/* Entry state exists only for callers that were not readers at entry: no second check. */
	e = bpf_task_storage_get(&entries, task, 0, 0);
	if (e && e->valid && e->ev.nr == slot) {
		e->valid = 0;
		if (e->aux_room && ret >= 0)
			exit_aux(pc, e, slot);
		emit(task, pc, e, ret, bpf_ktime_get_ns() - e->mono_ns, rule);
		return 0;
	}
	if (e)
		e->valid = 0;
	if (is_consumer(task->tgid))
		return 0;
	/* Entry not seen: log what the exit knows. */
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	start_record(e, regs, nr, slot, compat, bpf_ktime_get_ns());
	e->ev.flags |= SAGA_EVF_NO_ENTER;
	pc->no_enter++;
	emit(task, pc, e, ret, 0, rule);
	return 0;
}

/* The tree marks a new task gets (docs/kernel-abi.md, "tree"). */
struct fork_walk {
	struct saga_bpf_ruleset *rs;
	struct caller parent;
	__u32 ids[SAGA_TREE_MARKS];
	__u32 n;
	__u32 lost;
};

static long fork_step(__u32 i, void *data)
{
	struct fork_walk *f = data;
	struct saga_rule *r;

	if (i >= f->rs->nr_rules)
		return 1;
	r = &f->rs->rules[i & (SAGA_MAX_RULES - 1)];
	if (!(r->match & SAGA_MATCH_TREE))
		return 0;
	if (!fields_match(r, &f->parent) && !marked(&f->parent, r->id))
		return 0;
	if (f->n >= SAGA_TREE_MARKS) {
		f->lost++;
		return 0;
	}
	f->ids[f->n & (SAGA_TREE_MARKS - 1)] = r->id;
	f->n++;
	return 0;
}

/*
 * A task forks (in the parent, before the child runs): the child is marked
 * for each tree rule in force whose process fields the parent matches or
 * whose mark it carries.  Marks are made whether capture is paused or not:
 * they are the rules' state, not a record.
 */
SEC("tp_btf/sched_process_fork")
int saga_fork(__u64 *ctx)
{
	struct task_struct *child = (struct task_struct *)ctx[1];
	struct saga_bpf_marks *m;
	struct saga_bpf_pcpu *pc;
	struct fork_walk f;

	f.rs = ruleset(*(volatile __u32 *)&saga_config.actions);
	if (!f.rs || !f.rs->nr_tree)
		return 0;
	f.parent.known = 0;
	f.n = f.lost = 0;
#pragma unroll
	for (int i = 0; i < SAGA_TREE_MARKS; i++)
		f.ids[i] = 0;
	bpf_loop(SAGA_MAX_RULES, fork_step, &f, 0);
	if (f.n) {
		m = bpf_task_storage_get(&marks, child, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (m) {
#pragma unroll
			for (int i = 0; i < SAGA_TREE_MARKS; i++)
				m->ids[i] = f.ids[i];
		} else {
			f.lost += f.n;
		}
	}
	if (f.lost) {
		pc = bpf_map_lookup_elem(&counters, &zero);
		if (pc)
			pc->tree_drops += f.lost;
	}
	return 0;
}

/* A task ends: count it if it ends in exit or exit_group (they never reach sys_exit). */
SEC("tp_btf/sched_process_exit")
int saga_task_exit(__u64 *ctx)
{
	struct task_struct *task;
	struct saga_bpf_pcpu *pc;
	struct pt_regs *regs;
	__u32 slot, rule;

	if (!saga_config.enabled)
		return 0;
	task = bpf_get_current_task_btf();
	if (task->flags & PF_KTHREAD)
		return 0;
	/* The syscall the task is in: exit/exit_group, or another one if a signal killed it. */
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!regs)
		return 0;
	slot = slot_of(regs->orig_ax, task->thread_info.status & TS_COMPAT);
	if (slot != SAGA_SLOT_EXIT && slot != SAGA_SLOT_EXIT_GROUP)
		return 0;
	if (action_of(slot, 0, 1, &rule) == SAGA_ACT_IGNORE)
		return 0;
	pc = bpf_map_lookup_elem(&counters, &zero);
	if (pc)
		count(pc, slot, 0);
	return 0;
}

/*
 * Native rt_sigreturn, at entry: the syscalls:sys_enter_rt_sigreturn event
 * runs this program for that call only (the kernel's per-syscall events
 * skip ia32 calls), so it is counted whether sys_enter is attached or not.
 */
SEC("tracepoint/syscalls/sys_enter_rt_sigreturn")
int saga_sigreturn(void *ctx)
{
	struct task_struct *task;
	struct pt_regs *regs;

	if (!saga_config.enabled)
		return 0;
	task = bpf_get_current_task_btf();
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!regs)
		return 0;
	noreturn_call(regs, SAGA_SLOT_RT_SIGRETURN, SAGA_SLOT_RT_SIGRETURN, 0, 0);
	return 0;
}
