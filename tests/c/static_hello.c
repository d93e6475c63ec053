/*
 * A statically linked program (built with -static): the loader never
 * preloads memprof into it, so memprof must say it could not see it.
 * Prints one line and exits 0, or with the status given as argument.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	puts("static hello");
	return argc > 1 ? atoi(argv[1]) : 0;
}
