/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types the BPF program reads, for CO-RE.
 *
 * Written by hand instead of a bpftool-generated vmlinux.h: only the
 * fields named here are used, preserve_access_index makes libbpf relocate
 * every access against the running kernel's BTF at load time, and the
 * build does not depend on the build machine's kernel.
 */
#ifndef SAGA_KERNEL_TYPES_H
#define SAGA_KERNEL_TYPES_H

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/* x86_64 user registers saved at syscall entry (arch/x86/include/asm/ptrace.h). */
struct pt_regs {
	unsigned long bp;
	unsigned long bx;
	unsigned long r10;
	unsigned long r9;
	unsigned long r8;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
};

struct thread_info {
	__u32 status;		/* TS_COMPAT while an ia32 syscall runs */
};

/* The executable's identity (exe= rules): mm->exe_file->f_inode's i_ino and i_sb->s_dev. */
struct super_block {
	__u32 s_dev;		/* dev_t, the kernel's encoding (major << 20 | minor) */
};

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
};

struct file {
	struct inode *f_inode;
};

struct mm_struct {
	struct file *exe_file;
};

/* Ids read straight from the task, cheaper than the helpers that return them. */
struct cred {
	struct { __u32 val; } uid;	/* kuid_t: the uid in the initial user namespace */
	struct { __u32 val; } gid;	/* kgid_t */
};

struct kernfs_node {
	__u64 id;			/* a cgroup's id: its directory's inode number */
};

struct cgroup {
	struct kernfs_node *kn;
};

struct css_set {
	struct cgroup *dfl_cgrp;	/* the task's cgroup in the v2 hierarchy */
};

struct task_struct {
	struct thread_info thread_info;
	unsigned int flags;	/* PF_* */
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct mm_struct *mm;
	const struct cred *cred;
	struct css_set *cgroups;
	char comm[16];		/* TASK_COMM_LEN, NUL-padded (__set_task_comm pads) */
};

#pragma clang attribute pop

/* arch/x86/include/asm/thread_info.h */
#define TS_COMPAT 0x0002
/* include/linux/sched.h */
#define PF_KTHREAD 0x00200000

#endif /* SAGA_KERNEL_TYPES_H */
