#!/usr/bin/env bash
# Runs each program under LeakSanitizer (Debian's liblsan0, preloaded into
# the unmodified program) and under memprof check, and prints a markdown
# table of both verdicts and leaked bytes. Exits 1 if any row disagrees:
# different verdicts, or leaked bytes more than 10% apart; or if fewer
# than MIN_COMPARED rows could be compared at all. A program that
# LeakSanitizer itself crashes (Debian 12's liblsan0 kills git and
# sqlite3 with SIGSEGV at start: its signal() interceptor jumps to a NULL
# "real" signal, so any program that calls signal() dies there)
# is said to be so and not compared: its "no leaks" would agree with
# anything.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
lsan=$(ls /usr/lib/x86_64-linux-gnu/liblsan.so.0 2>/dev/null) || { echo "liblsan0 is not installed" >&2; exit 2; }
T=$root/build/tests
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 2
echo hello > input.txt
cp "$root/collector/map.c" prog.c
cp "$root/collector/map.h" "$root/collector/util.h" .

programs=(
	"$T/target_leaks"
	"$T/target_leaks none"
	"$T/target_leaks thread"
	"python3 -c print(sum(range(10)))"
	"gcc --version"
	"gcc -O2 -S prog.c -o prog.s"
	"git --version"
	"git init -q repo"
	"sqlite3 :memory: select(1)"
	"ls -l /"
	"sort /etc/passwd"
	"sed s/a/b/ /etc/passwd"
	"wc -l input.txt"
)

# The processes of a tree exit as they would bare under memprof check, so
# LeakSanitizer's must too (exitcode=0): with its default, cc1 exits 23 and
# gcc stops there. gcc compiles to assembly (-S): binutils' as crashes
# under LeakSanitizer (Debian 12), so nothing could be compared for it.
export LSAN_OPTIONS=exitcode=0

# leaked bytes from the SUMMARY lines (one per leaking process), 0 if none
bytes() { sed -n 's/^SUMMARY: [A-Za-z]*: \([0-9]*\) byte.*/\1/p' | awk '{ n += $1 } END { print n + 0 }'; }

MIN_COMPARED=8
bad=0 compared=0
echo "| program | LeakSanitizer | memprof check | agree |"
echo "|---|---|---|---|"
for p in "${programs[@]}"; do
	read -r -a cmd <<<"$p"
	rm -rf repo
	l=$(
		LD_PRELOAD=$lsan "${cmd[@]}" 2>&1 >/dev/null
		echo "lsan-status $?"
	)
	lstatus=$(echo "$l" | sed -n 's/^lsan-status //p')
	l=$(echo "$l" | bytes)
	rm -rf repo
	m=$("$root/scripts/memprof" check -o "$tmp/out" -- "${cmd[@]}" 2>&1 >/dev/null | bytes)
	ok=yes lv="$l bytes"
	[ "$l" -eq 0 ] && lv="no leaks"
	if [ "$lstatus" -gt 128 ]; then
		ok="not compared" lv="crashed (signal $((lstatus - 128)))"
	elif [ "$l" -eq 0 ] || [ "$m" -eq 0 ]; then
		[ "$l" -eq "$m" ] || ok=no
	else
		awk -v a="$l" -v b="$m" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= a * 0.10) }' || ok=no
	fi
	[ "$ok" = no ] && bad=1
	[ "$ok" = yes ] && compared=$((compared + 1))
	name=${p#"$T/"}
	printf '| `%s` | %s | %s | %s |\n' "$name" "$lv" \
		"$([ "$m" -eq 0 ] && echo "no leaks" || echo "$m bytes")" "$ok"
done
echo
echo "$compared of ${#programs[@]} programs compared (at least $MIN_COMPARED must be)."
[ "$compared" -ge "$MIN_COMPARED" ] || bad=1
exit "$bad"
