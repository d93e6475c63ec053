/*
 * A library the C++ target loads with dlopen (and unloads again), so that
 * the profile must name a function from a file that came and went.
 */
#include <stdlib.h>
#include <string.h>

void **plugin_allocate(size_t count, size_t size);

__attribute__((visibility("default"))) void **plugin_allocate(size_t count, size_t size)
{
	void **blocks = calloc(count, sizeof(void *));
	for (size_t i = 0; i < count; i++)
		memset(blocks[i] = malloc(size), 3, 16);
	return blocks;
}
