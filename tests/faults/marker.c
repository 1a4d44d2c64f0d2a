/*
 * The fault suite's marker workload: COUNT calls close(BASE + i), i = FIRST .. FIRST + COUNT - 1,
 * each failing with EBADF, at RATE calls per second (0: as fast as it can), under the task name
 * NAME (the tests' rule logs close by that name only), taken once the loader's own calls are done.  Every event names its marker in
 * its first argument, so an archive can be checked for each one: there once, or counted lost.
 *   marker FIRST COUNT RATE NAME
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BASE 0x40000000L

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long first, count, rate, done = 0;
	long long t0;

	if (argc != 5) {
		fprintf(stderr, "usage: marker FIRST COUNT RATE NAME\n");
		return 64;
	}
	first = atol(argv[1]);
	count = atol(argv[2]);
	rate = atol(argv[3]);
	prctl(PR_SET_NAME, argv[4], 0, 0, 0);
	t0 = now_ns();
	while (done < count) {
		long due = rate > 0 ? (long)((now_ns() - t0) * 1e-9 * rate) + 1 : count;

		for (; done < due && done < count; done++)
			syscall(SYS_close, BASE + first + done);
		if (done < count && rate > 0) {
			struct timespec nap = { 0, 200000 };

			nanosleep(&nap, NULL);
		}
	}
	printf("%ld\n", done);
	return 0;
}
