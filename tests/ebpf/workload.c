/*
 * Workloads for the eBPF driver tests.  Prints its pid, waits for a line
 * on stdin (so the test can install rules that name the pid), runs one
 * scenario, and exits.
 *
 *   getppid N      N getppid() calls
 *   errors N       N close(-1) calls (each fails with EBADF)
 *   thread N       N getppid() calls from a second thread
 *   compat N       N getppid() calls through int $0x80 (ia32 number 64)
 *   paths DIR      openat, renameat (two paths), a 300-byte path, a bad pointer
 *   blocked        nothing but the read of the go line (started before a load)
 *   seq N [US]     getppid(i) for i = 0..N-1 (i lands in args[0]), pausing US
 *                  microseconds every 64 calls (default 0)
 *   steps          prints "ready", then one getppid(i) per "c" line read, each
 *                  answered "ok", until end of input
 *   signal N       N SIGUSR1 sent to itself, each run by a handler that returns
 *                  (N rt_sigreturn calls)
 *   nosys N        N syscall(-1) (what a sigreturn's exit looks like), then N
 *                  calls of number 600 (beyond every table: slot unknown)
 *   exit CODE      exit_group(CODE) at once
 *   fork N         N children by fork(), each exiting at once, each waited for
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long n_calls;

static void *thread_main(void *arg)
{
	for (long i = 0; i < n_calls; i++)
		syscall(SYS_getppid);
	return arg;
}

static void paths(const char *dir)
{
	char a[512], b[512], longp[400];
	int fd;

	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	fd = syscall(SYS_openat, AT_FDCWD, a, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	close(fd);
	syscall(SYS_renameat, AT_FDCWD, a, AT_FDCWD, b);
	memset(longp, 'x', sizeof(longp));
	memcpy(longp, "/nonexistent/", 13);
	longp[300] = 0;
	syscall(SYS_openat, AT_FDCWD, longp, O_RDONLY);
	syscall(SYS_openat, AT_FDCWD, (const char *)8, O_RDONLY);	/* unreadable path */
}

static void seq(long n, long pause_us)
{
	struct timespec nap = { 0, pause_us * 1000 };

	for (long i = 0; i < n; i++) {
		syscall(SYS_getppid, i);
		if (pause_us && i % 64 == 63)
			nanosleep(&nap, NULL);
	}
}

/* One getppid per request, so a test can act between calls. */
static void steps(void)
{
	char req[2];
	long i = 0;

	printf("ready\n");
	fflush(stdout);
	while (read(0, req, sizeof(req)) == sizeof(req)) {
		syscall(SYS_getppid, i++);
		if (write(1, "ok\n", 3) != 3)
			return;
	}
}

static volatile long handled;

static void on_signal(int sig)
{
	handled++;
}

/* Each signal is delivered when tgkill returns; the handler's return is one rt_sigreturn. */
static int signals(long n)
{
	struct sigaction sa = { .sa_handler = on_signal };
	pid_t pid = getpid();

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL))
		return 1;
	for (long i = 0; i < n; i++)
		syscall(SYS_tgkill, pid, pid, SIGUSR1);
	return handled == n ? 0 : 1;
}

/*
 * execve (failing: ENOENT) with an argv array that ends where an unreadable
 * page begins: a driver reading more pointers than the array holds faults.
 */
static void argv_edge(void)
{
	long page = sysconf(_SC_PAGESIZE);
	char *map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	static char *const strings[] = { "edge", "of", "the page", NULL };
	char **args;

	if (map == MAP_FAILED || mprotect(map + page, page, PROT_NONE))
		return;
	args = (char **)(map + page - sizeof(strings));
	memcpy(args, strings, sizeof(strings));
	syscall(SYS_execve, "/nonexistent/saga-argv-edge", args, NULL);
}

/*
 * execve (failing: ENOENT) with argv strings laid out so that the eBPF
 * driver's one-read window (bpf/saga.bpf.c, argv_window) serves all, some
 * or none of them: packed together, the path among them; a last string longer than the window
 * reads past its start; one string far from the others; strings packed at
 * the end of a page before an unreadable one (the window read faults); more
 * packed bytes than the blob keeps; empty strings.
 */
static void argv_window(void)
{
	long page = sysconf(_SC_PAGESIZE);
	char *map = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *packed = map, *edge, *far = map + 2 * page;
	char *args[40];
	int n;

	if (map == MAP_FAILED || mprotect(map + 3 * page, page, PROT_NONE))
		return;
	/* packed: "one" "two" "three" "" "five", then a NUL-free tail */
	memcpy(packed, "one\0two\0three\0\0five\0", 20);
	memset(packed + 20, 'x', 200);
	args[0] = packed, args[1] = packed + 4, args[2] = packed + 8, args[3] = packed + 14, args[4] = packed + 15;
	args[5] = NULL;
	/* the path among them (system()'s "/bin/sh" and "sh"): taken from the window too */
	strcpy(packed + 300, "/nonexistent/saga-argv-packed");
	syscall(SYS_execve, packed + 300, args, NULL);
	/* the last string runs 400 bytes past the window's tail (the path: a literal, out of the window) */
	memset(packed + 512, 'L', 400);
	packed[912] = 0;
	args[5] = packed + 512, args[6] = NULL;
	syscall(SYS_execve, "/nonexistent/saga-argv-long", args, NULL);
	/* one string a page away from the rest */
	strcpy(far, "far away");
	args[1] = far, args[5] = NULL;
	syscall(SYS_execve, "/nonexistent/saga-argv-far", args, NULL);
	/* packed at the end of the page before the PROT_NONE one */
	edge = map + 3 * page - 12;
	memcpy(edge, "ab\0cd\0ef\0gh\0", 12);
	args[0] = edge, args[1] = edge + 3, args[2] = edge + 6, args[3] = edge + 9, args[4] = NULL;
	syscall(SYS_execve, "/nonexistent/saga-argv-edge", args, NULL);
	/* 8 packed strings of 99 bytes and their NULs: the blob keeps 5 */
	for (n = 0; n < 8; n++) {
		memset(map + page + 100 * n, 'a' + n, 99);
		map[page + 100 * n + 99] = 0;
		args[n] = map + page + 100 * n;
	}
	args[8] = NULL;
	syscall(SYS_execve, "/nonexistent/saga-argv-cut", args, NULL);
}

int main(int argc, char **argv)
{
	char line[16];
	const char *mode = argc > 1 ? argv[1] : "";

	n_calls = argc > 2 ? atol(argv[2]) : 0;
	printf("%d\n", getpid());
	fflush(stdout);
	if (read(0, line, sizeof(line)) < 0)
		return 2;

	if (!strcmp(mode, "getppid")) {
		for (long i = 0; i < n_calls; i++)
			syscall(SYS_getppid);
	} else if (!strcmp(mode, "errors")) {
		for (long i = 0; i < n_calls; i++)
			close(-1);
	} else if (!strcmp(mode, "thread")) {
		pthread_t t;

		pthread_create(&t, NULL, thread_main, NULL);
		pthread_join(t, NULL);
	} else if (!strcmp(mode, "compat")) {
		for (long i = 0; i < n_calls; i++) {
			long r;

			__asm__ volatile("int $0x80" : "=a"(r) : "a"(64L) : "memory");
		}
	} else if (!strcmp(mode, "paths")) {
		paths(argv[2]);
	} else if (!strcmp(mode, "seq")) {
		seq(n_calls, argc > 3 ? atol(argv[3]) : 0);
	} else if (!strcmp(mode, "steps")) {
		steps();
	} else if (!strcmp(mode, "signal")) {
		return signals(n_calls);
	} else if (!strcmp(mode, "nosys")) {
		for (long i = 0; i < n_calls; i++)
			syscall(-1L);
		for (long i = 0; i < n_calls; i++)
			syscall(600L);
	} else if (!strcmp(mode, "exit")) {
		syscall(SYS_exit_group, n_calls);
	} else if (!strcmp(mode, "fork")) {
		for (long i = 0; i < n_calls; i++) {
			pid_t child = fork();

			if (child == 0)
				_exit(0);
			if (child < 0 || waitpid(child, NULL, 0) != child)
				return 1;
		}
	} else if (!strcmp(mode, "argv-edge")) {
		argv_edge();
	} else if (!strcmp(mode, "argv-window")) {
		argv_window();
	} else if (strcmp(mode, "blocked")) {
		return 64;
	}
	return 0;
}
