// SPDX-License-Identifier: GPL-2.0
/*
 * The benchmark's floor: the least a tool on the syscall tracepoint can do.
 * One tp_btf program (the same attach type saga uses) that increments a
 * per-CPU counter for the syscall number.  Not part of the product.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} floor_counts SEC(".maps");

SEC("tp_btf/sys_enter")
int floor_sys_enter(__u64 *ctx)
{
	__u32 nr = (__u32)ctx[1] & 1023;
	__u64 *c = bpf_map_lookup_elem(&floor_counts, &nr);

	if (c)
		(*c)++;
	return 0;
}
