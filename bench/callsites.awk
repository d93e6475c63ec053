# bench/callsites.awk: writes callsites.c for bench/realprog, a program
# with N (-v n=10000) functions, each a distinct call site of malloc.
#
#   callsites ROUNDS [wait]
#
# calls every function ROUNDS times (each call frees the block its
# function made the round before, so N blocks stay live), prints a
# checksum, and with "wait" then prints "ready" and waits for its input to
# end (so that the bench can ask for dumps of a live process) before
# freeing everything and exiting.
BEGIN {
	if (n == "") n = 10000
	print "#include <stdio.h>"
	print "#include <stdlib.h>"
	print "#include <string.h>"
	print "#include <unistd.h>"
	print "static void *slot[" n "];"
	print "static unsigned long total;"
	for (i = 0; i < n; i++) {
		# The store after the call keeps malloc from being a tail call:
		# each function's return address is its own call site.
		printf "__attribute__((noinline)) static void f%d(void)\n{\n", i
		printf "\tfree(slot[%d]);\n\tsize_t s = %d + (total & 15);\n", i, 16 + (i * 37) % 480
		printf "\tslot[%d] = malloc(s);\n\tmemset(slot[%d], %d, s);\n\ttotal += s;\n}\n", i, i, i % 251
	}
	printf "static void (*const fn[%d])(void) = {\n", n
	for (i = 0; i < n; i++) printf "\tf%d,\n", i
	print "};"
	print "int main(int argc, char **argv)"
	print "{"
	print "\tlong rounds = argc > 1 ? atol(argv[1]) : 20;"
	print "\tfor (long r = 0; r < rounds; r++)"
	printf "\t\tfor (int i = 0; i < %d; i++)\n\t\t\tfn[i]();\n", n
	printf "\tprintf(\"callsites %d sites, %%ld rounds, %%lu bytes\\n\", rounds, total);\n", n
	print "\tfflush(stdout);"
	print "\tif (argc > 2 && strcmp(argv[2], \"wait\") == 0) {"
	print "\t\tchar buf[256];"
	print "\t\tprintf(\"ready\\n\");"
	print "\t\tfflush(stdout);"
	print "\t\twhile (read(0, buf, sizeof buf) > 0)"
	print "\t\t\t;"
	print "\t}"
	printf "\tfor (int i = 0; i < %d; i++)\n\t\tfree(slot[i]);\n", n
	print "\treturn 0;"
	print "}"
}
