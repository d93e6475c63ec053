/*
 * Allocates, then leaves at once by _exit (or _Exit), as dash and fork
 * children do: no exit handlers, so no goodbye from memprof. What the
 * shim recorded must still reach the collector.
 *   target_quick_exit N [_Exit]
 * keeps N blocks of 100 bytes allocated in keep_quick, then leaves with
 * status 3.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile kept[100000];

__attribute__((noinline)) static void keep_quick(int n)
{
	for (int i = 0; i < n && i < 100000; i++)
		kept[i] = malloc(100);
}

int main(int argc, char **argv)
{
	keep_quick(argc > 1 ? atoi(argv[1]) : 1000);
	if (argc > 2 && strcmp(argv[2], "_Exit") == 0)
		_Exit(3);
	_exit(3);
}
