/*
 * Leaks of known shape: leak_direct loses 100 blocks of 1000 bytes,
 * build_list loses a 50-node list of 64-byte nodes (1 direct, 49 indirect),
 * a global keeps a block reachable, and some blocks are freed. With the
 * argument "none" it leaks nothing. With "thread" a second thread is still
 * running (holding memory on its stack) when main returns.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct node {
	struct node *next;
	char payload[56];
};

void *kept; /* reachable at exit: not a leak */

__attribute__((noinline)) static void leak_direct(void)
{
	for (int i = 0; i < 100; i++) {
		char *p = malloc(1000);
		memset(p, i, 1000);
		__asm__ volatile("" : : "r"(p) : "memory");
	}
}

__attribute__((noinline)) static struct node *build_list(void)
{
	struct node *head = NULL;
	for (int i = 0; i < 50; i++) {
		struct node *n = malloc(sizeof(*n));
		memset(n->payload, i, sizeof(n->payload));
		n->next = head;
		head = n;
	}
	return head;
}

__attribute__((noinline)) static void free_list(struct node *n)
{
	while (n) {
		struct node *next = n->next;
		free(n);
		n = next;
	}
}

/* Overwrites the dead part of the stack, so that stale copies of lost
 * pointers there (left by the functions above and by the allocator's own
 * frames) do not count as references, for either checker. Each level
 * zeroes its own frame: one big array would leave the slots between it and
 * the return address alone. */
__attribute__((noinline)) static void scrub_stack(int depth)
{
	volatile char junk[192];
	memset((char *)junk, 0, sizeof(junk));
	if (depth > 0)
		scrub_stack(depth - 1);
	__asm__ volatile("" : : "r"(junk) : "memory");
}

static void *busy_thread(void *arg)
{
	(void)arg;
	void *volatile mine = malloc(777); /* live, reachable from this stack */
	for (;;)
		pause();
	return mine;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "leak";
	kept = malloc(4096);
	for (int i = 0; i < 20; i++)
		free(malloc(100 + i));
	if (strcmp(mode, "none") == 0) {
		free_list(build_list());
	} else if (strcmp(mode, "thread") == 0) {
		pthread_t t;
		pthread_create(&t, NULL, busy_thread, NULL);
		usleep(100000);
	} else {
		leak_direct();
		build_list();
	}
	scrub_stack(64);
	printf("%s done\n", mode); /* buffered: must not be lost on a leak exit */
	return 0;
}
