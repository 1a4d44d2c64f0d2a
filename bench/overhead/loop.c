/*
 * The measured workload: N calls of one cheap syscall, timed with
 * CLOCK_MONOTONIC around the loop.  Prints nanoseconds per call.
 *   loop getppid N      getppid()
 *   loop read N         read(fd, buf, 1) on /dev/zero
 *   loop paced RATE S   getppid() at RATE calls/s for S seconds (prints the rate reached)
 *   loop connect N      connect() of a UDP socket to 127.0.0.1:9 (a socket address: aux at entry)
 *   loop execve N       execve() of a missing program with 5 arguments (ENOENT; argv: aux at entry)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 2 ? atol(argv[2]) : 0;
	int is_read = argc > 1 && !strcmp(argv[1], "read");
	int fd = open("/dev/zero", O_RDONLY);
	char c;
	long long t0, t1;

	if (argc < 3 || n <= 0 || fd < 0) {
		fprintf(stderr, "usage: loop getppid|read|connect|execve N | loop paced RATE SECONDS\n");
		return 64;
	}
	if (!strcmp(argv[1], "paced")) {
		double secs = argc > 3 ? atof(argv[3]) : 1.0;
		long total = (long)(n * secs), done = 0;

		t0 = now_ns();
		while (done < total) {
			/* Calls due by now, issued in small bursts. */
			long due = (long)((now_ns() - t0) * 1e-9 * n);

			for (; done < due && done < total; done++)
				syscall(SYS_getppid);
			/* Sleep between bursts: a spinning pacer would take the reader's CPU. */
			struct timespec nap = { 0, 200000 };
			nanosleep(&nap, NULL);
		}
		t1 = now_ns();
		printf("%.0f\n", done / ((t1 - t0) * 1e-9));
		return 0;
	}
	if (!strcmp(argv[1], "connect")) {
		struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9) };
		int s = socket(AF_INET, SOCK_DGRAM, 0);

		to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		t0 = now_ns();
		for (long i = 0; i < n; i++)
			syscall(SYS_connect, s, &to, sizeof(to));
		t1 = now_ns();
		printf("%.2f\n", (double)(t1 - t0) / n);
		return 0;
	}
	if (!strcmp(argv[1], "execve")) {
		char *args[] = { "saga-missing", "--verbose", "-o", "/tmp/out", "input.txt", NULL };
		char *env[] = { NULL };

		t0 = now_ns();
		for (long i = 0; i < n; i++)
			syscall(SYS_execve, "/nonexistent/saga-missing", args, env);
		t1 = now_ns();
		printf("%.2f\n", (double)(t1 - t0) / n);
		return 0;
	}
	t0 = now_ns();
	if (is_read)
		for (long i = 0; i < n; i++)
			syscall(SYS_read, fd, &c, 1);
	else
		for (long i = 0; i < n; i++)
			syscall(SYS_getppid);
	t1 = now_ns();
	printf("%.2f\n", (double)(t1 - t0) / n);
	return 0;
}
