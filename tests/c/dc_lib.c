/* A library whose debug information lives in a separate, compressed debug
 * file (tests/bats/debug_cache.bats builds it that way), as a
 * distribution's -dbgsym package has it. */
#include <stdlib.h>
#include <string.h>

void *dc_alloc_in_lib(size_t n)
{
	void *p = malloc(n); /* the line the profile must name */
	if (p)
		memset(p, 1, n);
	return p;
}
