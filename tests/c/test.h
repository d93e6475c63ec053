/*
 * test.h: the few assertion helpers the C unit tests share. CHECK* macros
 * print file:line and what failed to stderr, count checks and failures, and
 * test_summary() turns the counts into main's exit status. Header-only: each
 * unit test is one program, so the counters can be static here.
 */
#ifndef MEMPROF_TEST_H
#define MEMPROF_TEST_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int test_checks;
static int test_failures;

static inline bool test_check(bool ok, const char *file, int line, const char *expr)
{
	test_checks++;
	if (!ok) {
		test_failures++;
		fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
	}
	return ok;
}

/* NULL-safe so that a missing string fails the check instead of crashing. */
static inline bool test_str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static inline bool test_str_ends_with(const char *s, const char *suffix)
{
	size_t n = s ? strlen(s) : 0, m = strlen(suffix);

	return s && n >= m && strcmp(s + n - m, suffix) == 0;
}

#define CHECK(cond) test_check((cond), __FILE__, __LINE__, #cond)

/* The variants below also print both values, which the bare expression cannot show. */
#define CHECK_INT_EQ(a, b) do { \
	int64_t test_a_ = (int64_t)(a), test_b_ = (int64_t)(b); \
	if (!test_check(test_a_ == test_b_, __FILE__, __LINE__, #a " == " #b)) \
		fprintf(stderr, "    %" PRId64 " != %" PRId64 "\n", test_a_, test_b_); \
} while (0)

#define CHECK_STR_EQ(a, b) do { \
	const char *test_a_ = (a), *test_b_ = (b); \
	if (!test_check(test_str_eq(test_a_, test_b_), __FILE__, __LINE__, #a " == " #b)) \
		fprintf(stderr, "    \"%s\" != \"%s\"\n", test_a_ ? test_a_ : "(null)", test_b_ ? test_b_ : "(null)"); \
} while (0)

#define CHECK_STR_ENDS_WITH(s, suffix) do { \
	const char *test_s_ = (s); \
	if (!test_check(test_str_ends_with(test_s_, suffix), __FILE__, __LINE__, #s " ends with " #suffix)) \
		fprintf(stderr, "    \"%s\"\n", test_s_ ? test_s_ : "(null)"); \
} while (0)

/* Prints one summary line; use as `return test_summary(argv[0]);` in main. */
static inline int test_summary(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
	return test_failures ? 1 : 0;
}

#endif /* MEMPROF_TEST_H */
