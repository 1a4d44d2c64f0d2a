/*
 * The floor of bench/daemon: the least a reader of saga's BPF ring buffer can do.
 * libbpf's ring_buffer consumer, a callback that only counts, a poll every 50 ms
 * at most (as saga's reader's periodic check).  Prints "ready", then on SIGTERM
 * the records and bytes it consumed.
 *   ringcount PIN      PIN: the pinned ring buffer map (SAGA_BPF_DIR/events)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static volatile sig_atomic_t stop;
static unsigned long long records, bytes;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int on_record(void *ctx, void *data, size_t size)
{
	(void)ctx;
	(void)data;
	records++;
	bytes += size;
	return 0;
}

int main(int argc, char **argv)
{
	struct ring_buffer *rb;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: ringcount PINNED_RING_MAP\n");
		return 64;
	}
	fd = bpf_obj_get(argv[1]);
	if (fd < 0) {
		perror(argv[1]);
		return 69;
	}
	rb = ring_buffer__new(fd, on_record, NULL, NULL);
	if (!rb) {
		perror("ring_buffer__new");
		return 69;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		int err = ring_buffer__poll(rb, 50);

		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "ring_buffer__poll: %d\n", err);
			break;
		}
	}
	ring_buffer__consume(rb);
	printf("%llu %llu\n", records, bytes);
	ring_buffer__free(rb);
	return 0;
}
