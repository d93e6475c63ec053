/*
 * A statically linked program (built with -static): the loader never
 * preloads memprof into it, so memprof must say it could not see it.
 * Prints one line and exits 0, or with the status given as argument; with
 * "kill", kills itself with SIGKILL instead.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	puts("static hello");
	fflush(stdout);
	if (argc > 1 && strcmp(argv[1], "kill") == 0)
		raise(SIGKILL);
	return argc > 1 ? atoi(argv[1]) : 0;
}
