// SPDX-License-Identifier: GPL-2.0
/*
 * Known syscall workloads for tests/kernel and bench/kmod, compiled on the
 * host by tools/vmtest.  Raw syscall(2) so libc adds or hides nothing.
 *
 *   calls getppid N          N getppid calls
 *   calls bench N            N getppid calls; prints the mean ns per call (CLOCK_MONOTONIC)
 *   calls int80 N            N getppid calls through the ia32 entry (int $0x80)
 *   calls open PATH          one openat(AT_FDCWD, PATH, O_RDONLY|O_CLOEXEC); prints "PID TID RET"
 *   calls fail N             N openat calls that fail with ENOENT
 *   calls path LEN           one openat of a LEN-byte path (fails); prints the path
 *   calls fault              one openat whose path is in a page never touched (not present)
 *   calls fork               fork a child that exits at once; prints the child's pid
 *   calls exit CODE          exit_group(CODE) at once
 *   calls signal N           N signals to itself, each handled (rt_sigreturn)
 *   calls sleep MS           one nanosleep
 *   calls block N MS         N children, each in one nanosleep of MS ms
 *   calls storm SECONDS      getppid and openat in a loop for SECONDS
 *   calls fuzz N SEED        N random ioctls on /dev/saga (random commands, sizes, bytes, pointers)
 *   calls hammer N CPU       on CPU only: N rounds of getppid, openat("/") and close
 *   calls hop N              N getppid(i) calls (i in its first argument register), call i pinned
 *                            to CPU i % 2 first, then exit_group(0) pinned to CPU N % 2
 *   calls swap FILE...       RULE_REPLACE with each FILE's rules in turn (struct saga_rule arrays
 *                            as the test packed them), as fast as the ioctl allows, until SIGTERM;
 *                            prints "ready" once running and "swaps=N" (successful ioctls) at the end
 *   calls mix DIR            a fixed mix for the kmod/ebpf equivalence test: paths (two at once, a
 *                            long one, a missing one), errors, ia32 calls, handled signals, a forked
 *                            child; files created in DIR (which must exist) are removed again
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/saga.h>		/* kmod/include/uapi, by name only: no layout is assumed here */

static long arg_num(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0') {
		fprintf(stderr, "calls: not a number: %s\n", s);
		exit(64);
	}
	return v;
}

static void do_getppid(long n)
{
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
}

static void do_bench(long n)
{
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do_getppid(n);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.1f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n);
}

/* getppid is 64 in the i386 table. */
static void do_int80(long n)
{
	for (long i = 0; i < n; i++) {
		long ret = 64;

		asm volatile("int $0x80" : "+a"(ret) : : "memory");
	}
}

static void do_open(const char *path)
{
	long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);

	printf("%ld %ld %ld\n", (long)getpid(), (long)syscall(SYS_gettid), fd);
	fflush(stdout);
}

static void do_fail(long n)
{
	for (long i = 0; i < n; i++)
		syscall(SYS_openat, AT_FDCWD, "/nonexistent/saga-test", O_RDONLY);
}

static void do_path(long len)
{
	char *p = malloc(len + 1);

	for (long i = 0; i < len; i++)
		p[i] = (i % 8 == 0) ? '/' : 'a' + i % 26;
	p[len] = '\0';
	syscall(SYS_openat, AT_FDCWD, p, O_RDONLY);
	printf("%s\n", p);
}

static void do_fault(void)
{
	char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	syscall(SYS_openat, AT_FDCWD, p, O_RDONLY);
}

static void on_signal(int sig)
{
	(void)sig;
}

static void do_signal(long n)
{
	signal(SIGUSR1, on_signal);
	for (long i = 0; i < n; i++)
		raise(SIGUSR1);
}

/* Deterministic given the same DIR and environment (run it without ASLR to fix the pointers too). */
static void do_mix(const char *dir)
{
	char a[256], b[256], longp[301];
	char byte;
	long fd;
	pid_t pid;

	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	do_getppid(3);
	fd = syscall(SYS_openat, AT_FDCWD, "/dev/zero", O_RDONLY);
	syscall(SYS_read, fd, &byte, 1);
	syscall(SYS_close, fd);
	syscall(SYS_close, -1L);				/* EBADF */
	fd = syscall(SYS_openat, AT_FDCWD, a, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	syscall(SYS_write, fd, "saga", 4);
	syscall(SYS_close, fd);
	syscall(SYS_renameat, AT_FDCWD, a, AT_FDCWD, b);	/* two paths */
	syscall(SYS_unlinkat, AT_FDCWD, b, 0);
	syscall(SYS_openat, AT_FDCWD, "/nonexistent/saga", O_RDONLY);	/* ENOENT */
	memset(longp, 'x', sizeof(longp) - 1);
	memcpy(longp, "/nonexistent/", 13);
	longp[sizeof(longp) - 1] = '\0';
	syscall(SYS_openat, AT_FDCWD, longp, O_RDONLY);		/* 300 bytes: cut, PATH_TRUNC */
	do_int80(2);
	signal(SIGUSR1, on_signal);
	for (int i = 0; i < 3; i++)
		syscall(SYS_tgkill, getpid(), getpid(), SIGUSR1);	/* rt_sigreturn each */
	pid = fork();
	if (pid == 0) {
		do_getppid(2);
		syscall(SYS_exit_group, 3);
	}
	syscall(SYS_wait4, pid, NULL, 0, NULL);
}

static void do_fork(void)
{
	pid_t pid = fork();

	if (pid == 0)
		syscall(SYS_exit_group, 0);
	waitpid(pid, NULL, 0);
	printf("%d\n", pid);
}

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	syscall(SYS_nanosleep, &ts, NULL);
}

static void do_block(long n, long ms)
{
	for (long i = 0; i < n; i++)
		if (fork() == 0) {
			nap(ms);
			_exit(0);
		}
	while (wait(NULL) > 0)
		;
}

static void do_storm(long seconds)
{
	time_t end = time(NULL) + seconds;

	while (time(NULL) < end) {
		for (int i = 0; i < 1000; i++) {
			long fd;

			syscall(SYS_getppid);
			fd = syscall(SYS_openat, AT_FDCWD, "/", O_RDONLY);
			if (fd >= 0)
				syscall(SYS_close, fd);
		}
	}
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/*
 * Random ioctls.  Commands: saga's own, the same numbers with other sizes
 * or directions, and random ones.  Argument: a buffer of random bytes
 * (whose pointer fields may point at another random buffer), NULL, an
 * unmapped page or a kernel address.
 */
static void do_fuzz(long n, long seed)
{
	static const unsigned int dirs[] = { _IOC_NONE, _IOC_READ, _IOC_WRITE, _IOC_READ | _IOC_WRITE };
	unsigned char *buf, *other, *hole;
	long counts[4] = { 0 };
	int fd = open("/dev/saga", O_RDWR | O_NONBLOCK);

	if (fd < 0) {
		perror("calls: /dev/saga");
		exit(1);
	}
	rng_state = seed ? seed : 1;
	buf = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	other = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	hole = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (long i = 0; i < n; i++) {
		unsigned int nr = rnd() % 12, size, cmd;
		uint64_t r = rnd();
		void *arg;
		long ret;

		size = (r & 1) ? 256 : rnd() % 512;
		if (r & 2)
			size = (unsigned int[]){ 0, 4, 24, 48, 80, 200 }[rnd() % 6];
		cmd = _IOC(dirs[rnd() % 4], (r & 4) ? SAGA_IOC_MAGIC : rnd() & 0xff, nr, size);
		for (unsigned int k = 0; k < 1024; k += 8)
			*(uint64_t *)(buf + k) = rnd() % 3 ? rnd() & ((rnd() % 2) ? 0xff : ~0ULL) : 0;
		if (rnd() % 3 == 0) {	/* plausible pointers and counts */
			*(uint64_t *)(buf + 8) = (uint64_t)(other + (rnd() % 4) * 4096);
			*(uint32_t *)(buf + 0) = rnd() % 2048;
			*(uint32_t *)(buf + 4) = rnd() % 2048;
			for (unsigned int k = 0; k < 4096; k += 8)
				*(uint64_t *)(other + k) = rnd() % 2 ? 0 : rnd();
		}
		switch (rnd() % 8) {
		case 0: arg = NULL; break;
		case 1: arg = hole; break;
		case 2: arg = (void *)0xffffffff81000000UL; break;
		default: arg = buf; break;
		}
		ret = ioctl(fd, cmd, arg);
		counts[ret == 0 ? 0 : errno == ENOTTY ? 1 : errno == EINVAL ? 2 : 3]++;
	}
	printf("ok=%ld enotty=%ld einval=%ld other=%ld\n", counts[0], counts[1], counts[2], counts[3]);
	close(fd);
}

static void pin(long cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	/* Returns once the task runs on @cpu: the scheduler moves it before. */
	if (sched_setaffinity(0, sizeof(set), &set)) {
		perror("calls: sched_setaffinity");
		exit(1);
	}
}

static void do_hammer(long n, long cpu)
{
	pin(cpu);
	for (long i = 0; i < n; i++) {
		long fd;

		syscall(SYS_getppid);
		fd = syscall(SYS_openat, AT_FDCWD, "/", O_RDONLY);
		if (fd >= 0)
			syscall(SYS_close, fd);
	}
}

/* A task that changes CPUs between its calls: records of both rings, numbered. */
static void do_hop(long n)
{
	for (long i = 0; i < n; i++) {
		pin(i % 2);
		syscall(SYS_getppid, i);
	}
	pin(n % 2);
	syscall(SYS_exit_group, 0);
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

/* One rule set per file, each a whole number of struct saga_rule. */
static void do_swap(int nfiles, char **files)
{
	struct saga_rule_list *lists = calloc(nfiles, sizeof(*lists));
	struct sigaction sa = { .sa_handler = on_term };
	long swaps = 0;
	int fd = open("/dev/saga", O_RDWR);

	if (fd < 0 || !lists) {
		perror("calls: /dev/saga");
		exit(1);
	}
	for (int i = 0; i < nfiles; i++) {
		FILE *f = fopen(files[i], "rb");
		struct saga_rule *rules = malloc(SAGA_MAX_RULES * sizeof(*rules));
		size_t n = f && rules ? fread(rules, sizeof(*rules), SAGA_MAX_RULES, f) : 0;

		if (!n) {
			fprintf(stderr, "calls: no rules in %s\n", files[i]);
			exit(1);
		}
		fclose(f);
		lists[i].count = n;
		lists[i].rules_ptr = (uintptr_t)rules;
	}
	sigaction(SIGTERM, &sa, NULL);
	printf("ready\n");
	fflush(stdout);
	for (long i = 0; !stop; i++) {
		if (ioctl(fd, SAGA_IOC_RULE_REPLACE, &lists[i % nfiles]) == 0)
			swaps++;
		else if (errno != EINTR) {
			perror("calls: RULE_REPLACE");
			exit(1);
		}
	}
	printf("swaps=%ld\n", swaps);
	close(fd);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	if (!strcmp(mode, "getppid") && argc == 3)
		do_getppid(arg_num(argv[2]));
	else if (!strcmp(mode, "bench") && argc == 3)
		do_bench(arg_num(argv[2]));
	else if (!strcmp(mode, "int80") && argc == 3)
		do_int80(arg_num(argv[2]));
	else if (!strcmp(mode, "open") && argc == 3)
		do_open(argv[2]);
	else if (!strcmp(mode, "fail") && argc == 3)
		do_fail(arg_num(argv[2]));
	else if (!strcmp(mode, "path") && argc == 3)
		do_path(arg_num(argv[2]));
	else if (!strcmp(mode, "fault") && argc == 2)
		do_fault();
	else if (!strcmp(mode, "signal") && argc == 3)
		do_signal(arg_num(argv[2]));
	else if (!strcmp(mode, "fork") && argc == 2)
		do_fork();
	else if (!strcmp(mode, "exit") && argc == 3)
		syscall(SYS_exit_group, arg_num(argv[2]));
	else if (!strcmp(mode, "sleep") && argc == 3)
		nap(arg_num(argv[2]));
	else if (!strcmp(mode, "block") && argc == 4)
		do_block(arg_num(argv[2]), arg_num(argv[3]));
	else if (!strcmp(mode, "storm") && argc == 3)
		do_storm(arg_num(argv[2]));
	else if (!strcmp(mode, "fuzz") && argc == 4)
		do_fuzz(arg_num(argv[2]), arg_num(argv[3]));
	else if (!strcmp(mode, "mix") && argc == 3)
		do_mix(argv[2]);
	else if (!strcmp(mode, "hammer") && argc == 4)
		do_hammer(arg_num(argv[2]), arg_num(argv[3]));
	else if (!strcmp(mode, "hop") && argc == 3)
		do_hop(arg_num(argv[2]));
	else if (!strcmp(mode, "swap") && argc >= 3)
		do_swap(argc - 2, argv + 2);
	else {
		fprintf(stderr, "usage: calls getppid|bench|int80|fail N | open PATH | path LEN | fault | fork | exit CODE | signal N | "
			"sleep MS | block N MS | storm SECONDS | fuzz N SEED | mix DIR | hammer N CPU | hop N | swap FILE...\n");
		return 64;
	}
	return 0;
}
