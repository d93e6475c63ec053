/*
 * The program `make demo` profiles: a little word-frequency report with
 * three kinds of memory use, so that the profile has something to say.
 *  - load_corpus keeps every word of a generated text (long-lived strings);
 *  - count_words builds a hash table of counts (long-lived nodes);
 *  - format_report makes and throws away line buffers (churn: allocated,
 *    never in use for long);
 * and sort_counts spends CPU time shuffling and sorting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORDS 400000
#define BUCKETS 65536

struct entry {
	char *word;
	long count;
	struct entry *next;
};

static char **corpus;
static struct entry *table[BUCKETS];

static unsigned long hash(const char *s)
{
	unsigned long h = 5381;
	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

/* A text of made-up words with a skewed vocabulary. */
static char **load_corpus(void)
{
	static const char syll[][4] = { "ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi" };
	char **words = malloc(WORDS * sizeof(char *));
	unsigned long seed = 12345;
	for (long i = 0; i < WORDS; i++) {
		seed = seed * 6364136223846793005UL + 1442695040888963407UL;
		int n = 1 + (int)((seed >> 33) % 5);
		char buf[32] = "";
		for (int k = 0; k < n; k++)
			strcat(buf, syll[(seed >> (38 + 5 * k)) % (k < 2 ? 8 : 4)]);
		words[i] = strdup(buf);
	}
	return words;
}

static void count_words(char **words)
{
	for (long i = 0; i < WORDS; i++) {
		unsigned long h = hash(words[i]) % BUCKETS;
		struct entry *e = table[h];
		while (e && strcmp(e->word, words[i]) != 0)
			e = e->next;
		if (!e) {
			e = calloc(1, sizeof(*e));
			e->word = words[i];
			e->next = table[h];
			table[h] = e;
		}
		e->count++;
	}
}

static int by_count(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;
	return x->count != y->count ? (y->count > x->count ? 1 : -1) : strcmp(x->word, y->word);
}

static struct entry **sort_counts(long *n)
{
	long cap = 1024, len = 0;
	struct entry **all = malloc(cap * sizeof(*all));
	for (long b = 0; b < BUCKETS; b++)
		for (struct entry *e = table[b]; e; e = e->next) {
			if (len == cap)
				all = realloc(all, (cap *= 2) * sizeof(*all));
			all[len++] = e;
		}
	/* Shuffle and sort, many times over: the CPU-heavy part. */
	unsigned long seed = 99;
	for (int round = 0; round < 600; round++) {
		for (long i = len - 1; i > 0; i--) {
			seed = seed * 6364136223846793005UL + 1442695040888963407UL;
			long j = (long)((seed >> 33) % (unsigned long)(i + 1));
			struct entry *t = all[i];
			all[i] = all[j];
			all[j] = t;
		}
		qsort(all, (size_t)len, sizeof(*all), by_count);
	}
	qsort(all, (size_t)len, sizeof(*all), by_count);
	*n = len;
	return all;
}

static unsigned long format_report(struct entry **all, long n)
{
	unsigned long checksum = 0;
	for (int pass = 0; pass < 20; pass++) {
		for (long i = 0; i < n; i++) {
			char *line = malloc(256 + (size_t)(i % 7) * 512);
			int len = snprintf(line, 256, "%8ld %s\n", all[i]->count, all[i]->word);
			checksum += (unsigned long)len + (unsigned char)line[9];
			free(line);
		}
	}
	return checksum;
}

int main(void)
{
	corpus = load_corpus();
	count_words(corpus);
	long n;
	struct entry **all = sort_counts(&n);
	unsigned long checksum = format_report(all, n);
	printf("%ld distinct words in %d; most frequent: \"%s\" (%ld times); checksum %lu\n", n,
	       WORDS, all[0]->word, all[0]->count, checksum);
	return 0;
}
