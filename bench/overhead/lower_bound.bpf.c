// SPDX-License-Identifier: GPL-2.0
/*
 * The least a two-program syscall logger pays for what a saga record needs
 * at its core: an entry time kept per task until the exit, the duration
 * taken there, and one 136-byte record (sizeof(struct saga_event)) copied
 * into a ring buffer.  No rules, counters, identity or wakeup policy.  Not
 * part of the product: bench/overhead/ab measures it beside saga's object
 * (docs/benchmarks.md), built with the same flags.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct record {
	__u64 words[17];	/* 136 bytes */
};

struct entry {
	__u64 start;
	struct record rec;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 32 << 20);	/* saga's default ring size */
} lb_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct entry);
} lb_entries SEC(".maps");

SEC("tp_btf/sys_enter")
int lb_sys_enter(__u64 *ctx)
{
	struct entry *e = bpf_task_storage_get(&lb_entries, bpf_get_current_task_btf(), 0,
					       BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!e)
		return 0;
	e->start = bpf_ktime_get_ns();
	e->rec.words[1] = ctx[1];	/* the call's number */
	return 0;
}

SEC("tp_btf/sys_exit")
int lb_sys_exit(__u64 *ctx)
{
	struct entry *e = bpf_task_storage_get(&lb_entries, bpf_get_current_task_btf(), 0, 0);

	if (!e)
		return 0;
	e->rec.words[0] = bpf_ktime_get_ns() - e->start;
	e->rec.words[2] = ctx[1];	/* the return value */
	bpf_ringbuf_output(&lb_events, &e->rec, sizeof(e->rec), BPF_RB_NO_WAKEUP);
	return 0;
}
