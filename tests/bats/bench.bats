#!/usr/bin/env bats
# bench/realprog must not rot: a smoke run with the smallest sizes, one
# round and no warm-up (about a minute), whose report must have every row,
# and whose --write must put the block between its markers in a copy of
# bench/RESULTS.md and leave the text around them alone. The figures mean
# nothing here (tiny runs on a busy machine); bench/realprog at its
# defaults is for a quiet machine (make bench).

load test_helper

@test "bench/realprog: a smoke run reports every row and writes its block" {
	local t
	for t in heaptrack perl python3 sqlite3 git gcc g++ zstd; do
		command -v "$t" >/dev/null || skip "$t is not installed (scripts/install-deps installs it)"
	done
	[ -f /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ] || skip "libjemalloc2 is not installed"

	cp "$ROOT/bench/RESULTS.md" results.md
	run env BENCH_NO_INSTALL=1 BENCH_SIZE_DIV=100000 BENCH_ROUNDS=1 BENCH_MAX_ROUNDS=1 \
		BENCH_WARMUP=0 BENCH_STARTUP_REPS=2 BENCH_QUIET_WAIT=0 BENCH_RESULTS="$TEST_TMP/results.md" \
		"$ROOT/bench/realprog" --write
	echo "$output" | tail -n 30 | sed 's/^/# /' >&3
	# Exit 1 with only "no profile was written" is memprof's failure,
	# reported in the table, not the script's: that is for the tests of
	# memprof itself to catch.
	if [ "$status" -eq 1 ] && echo "$output" | grep -q '^bench/realprog: no profile was written by' &&
		! echo "$output" | grep -q '^bench/realprog: output differed'; then
		echo "# (a profiler wrote no profile in a run; see the table)" >&3
	else
		[ "$status" -eq 0 ]
	fi

	local w c n
	for w in perl python sqlite gcc sort git cxx; do
		for c in 'bare' 'memprof shim preloaded, shared collector' 'memprof run' \
			'memprof shim preloaded, MEMPROF_RATE=1' 'heaptrack' 'jemalloc alone' 'jemalloc prof:true'; do
			n=$(echo "$output" | grep -c "^| $w | $c")
			[ "$n" -eq 1 ] || { echo "row '$w | $c': $n times"; return 1; }
		done
	done
	# What the heaptrack rows cover is said: gcc's through -wrapper, and
	# git's as not comparable.
	echo "$output" | grep -q '^- heaptrack follows only the process it starts.*gcc -wrapper.*git row is not comparable'
	# Every memprof row printed and wrote what bare did.
	if echo "$output" | grep '^| [a-z]* | memprof' | grep -v '| yes\(; .*\)\{0,1\} |$'; then
		echo "a memprof row's output differs from bare's"
		return 1
	fi
	for c in '`env true` (bare)' '`env LD_PRELOAD=libmemprof.so MEMPROF_SOCKET=… true`' \
		'`env LD_PRELOAD=libmemprof.so true`' '`memprof run -- true`'; do
		echo "$output" | grep -qF "| $c" || { echo "no start-up row $c"; return 1; }
	done
	echo "$output" | grep -q '\*\*collector peak RSS [0-9.]* MB\*\*'
	for c in 'collector CPU s' 'second USR2 dump, ms' 'collector peak RSS MB' \
		'heaptrack_interpret CPU s' 'heaptrack_interpret peak RSS MB'; do
		echo "$output" | grep -q "^| .*$c.* | 1 | [0-9.]* |$" || { echo "no call-site row '$c'"; return 1; }
	done

	# --write: the block between the markers, the rest as it was.
	grep -qF '<!-- bench/realprog:begin' results.md
	grep -qF '<!-- bench/realprog:end -->' results.md
	sed -n '/<!-- bench\/realprog:begin/,/<!-- bench\/realprog:end/p' results.md | grep -q "^| perl | bare |"
	diff <(sed '/<!-- bench\/realprog:begin/,/<!-- bench\/realprog:end/d' "$ROOT/bench/RESULTS.md") \
		<(sed '/<!-- bench\/realprog:begin/,/<!-- bench\/realprog:end/d' results.md)
}

# Some rows only, many rounds of them in a block of their own: the rows
# asked for and bare, and the full table's block left as it was.
@test "bench/realprog: BENCH_CONFIGS runs only the rows asked for, BENCH_BLOCK writes them apart" {
	cp "$ROOT/bench/RESULTS.md" results.md
	run env BENCH_NO_INSTALL=1 BENCH_SIZE_DIV=100000 BENCH_ROUNDS=1 BENCH_MAX_ROUNDS=1 \
		BENCH_WARMUP=0 BENCH_QUIET_WAIT=0 BENCH_RESULTS="$TEST_TMP/results.md" \
		BENCH_WORKLOADS=sort BENCH_CONFIGS=preload BENCH_BLOCK=defaults \
		"$ROOT/bench/realprog" --write
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | grep -c '^| sort | ')" -eq 2 ]
	echo "$output" | grep -q '^| sort | bare |'
	echo "$output" | grep -q '^| sort | memprof shim preloaded, shared collector'
	sed -n '/<!-- bench\/realprog:defaults:begin/,/<!-- bench\/realprog:defaults:end/p' results.md |
		grep -q '^| sort | bare |'
	# The full table's block and the text around this one: as they were
	# (blank lines aside: a new block comes after one).
	local cut='/<!-- bench\/realprog:defaults:begin/,/<!-- bench\/realprog:defaults:end/d'
	diff <(sed "$cut" "$ROOT/bench/RESULTS.md" | grep -v '^$') <(sed "$cut" results.md | grep -v '^$')
	run env BENCH_CONFIGS=nosuch "$ROOT/bench/realprog"
	[ "$status" -eq 2 ]
	[[ $output == *"BENCH_CONFIGS: unknown configuration 'nosuch'"* ]]
}

# bench/run's fulltrace part, the same way (about 10 s): 400,000 pairs, one
# round, every row in the report with its collector CPU, samples and drop
# counts, and its block written between its markers.
@test "bench/run: a fulltrace smoke run reports every row and writes its block" {
	cp "$ROOT/bench/RESULTS.md" results.md
	run env BENCH_ONLY=fulltrace BENCH_NO_INSTALL=1 BENCH_FT_PAIRS=400000 BENCH_ROUNDS=1 \
		BENCH_MAX_ROUNDS=1 BENCH_QUIET_WAIT=0 BENCH_RESULTS="$TEST_TMP/results.md" \
		"$ROOT/bench/run" --write
	echo "$output" | tail -n 15 | sed 's/^/# /' >&3
	[ "$status" -eq 0 ]

	local t c n
	for t in 1 2 4 8; do
		for c in 'bare' 'memprof shim preloaded, shared collector, MEMPROF_RATE=1'; do
			n=$(echo "$output" | grep -c "^| $t | $c | [0-9]" || true)
			[ "$n" -eq 1 ] || { echo "row '$t | $c': $n times"; return 1; }
		done
	done
	if command -v heaptrack >/dev/null; then
		echo "$output" | grep -q '^| 2 | heaptrack (every call traced'
	fi
	# Every rate-1 row has its collector CPU, samples and drop counts.
	if echo "$output" | grep '^| [0-9] | memprof' | grep -v '| [0-9.]* ([0-9.]*–[0-9.]*) | [0-9.]* | [0-9]* ([0-9]*–[0-9]*) | [0-9]* ([0-9]*–[0-9]*) | [0-9]* ([0-9]*–[0-9]*) |$'; then
		echo "a rate-1 row lacks the collector's CPU, samples or drops"
		return 1
	fi

	grep -qF '<!-- bench/run:fulltrace:begin' results.md
	grep -qF '<!-- bench/run:fulltrace:end -->' results.md
	sed -n '/<!-- bench\/run:fulltrace:begin/,/<!-- bench\/run:fulltrace:end/p' results.md | grep -q '^| 8 | bare |'
	diff <(sed '/<!-- bench\/run:fulltrace:begin/,/<!-- bench\/run:fulltrace:end/d' "$ROOT/bench/RESULTS.md") \
		<(sed '/<!-- bench\/run:fulltrace:begin/,/<!-- bench\/run:fulltrace:end/d' results.md)
}

# bench/instructions the same way (a few seconds): the smallest sort,
# bare, preloaded, under memprof run and with an idle thread, every count
# a number and the block written between its markers.
@test "bench/instructions: a smoke run counts every row and writes its block" {
	command -v valgrind >/dev/null || skip "valgrind is not installed"
	cp "$ROOT/bench/RESULTS.md" results.md
	run env BENCH_SIZE_DIV=100000 BENCH_WORKLOADS=sort BENCH_RESULTS="$TEST_TMP/results.md" \
		"$ROOT/bench/instructions" --write
	echo "$output" | tail -n 5 | sed 's/^/# /' >&3
	[ "$status" -eq 0 ]
	# workload, bare, program, collector, ratio, memprof run, ratio, idle
	# thread's ratio: all numbers, the collector's above zero (it wrote a
	# profile).
	echo "$output" | grep -Eq '^\| sort \| [0-9.]+ \| [0-9.]+ \| [0-9]*[1-9][0-9.]* \| \*\*[0-9.]+\*\* \| [0-9.]+ \| \*\*[0-9.]+\*\* \| [0-9]\.[0-9]{4} \|$'
	sed -n '/<!-- bench\/instructions:begin/,/<!-- bench\/instructions:end/p' results.md | grep -q '^| sort |'
	local cut='/<!-- bench\/instructions:begin/,/<!-- bench\/instructions:end/d'
	diff <(sed "$cut" "$ROOT/bench/RESULTS.md" | grep -v '^$') <(sed "$cut" results.md | grep -v '^$')
}

# bench/timeshares the same way (about 15 s): a tenth of sqlite's inserts,
# one round of its five rows, each a number (the collector's part of a
# profiled row above zero: it was sampled too), and the block written
# between its markers. perf may be missing, or refused by the kernel's
# perf_event_paranoid, on a machine that runs the tests.
@test "bench/timeshares: a smoke run gives every row and writes its block" {
	command -v perf >/dev/null && perf record -q -e cpu-clock -o /dev/null true 2>/dev/null ||
		skip "perf cannot sample here"
	cp "$ROOT/bench/RESULTS.md" results.md
	run env BENCH_SIZE_DIV=10 BENCH_ROUNDS=1 BENCH_WORKLOADS=sqlite \
		BENCH_RESULTS="$TEST_TMP/results.md" "$ROOT/bench/timeshares" --write
	echo "$output" | tail -n 4 | sed 's/^/# /' >&3
	[ "$status" -eq 0 ]
	local c p='[-+][0-9.]+' profiled='[+][0-9.]*[1-9][0-9.]*'
	for c in 'an idle thread (bench/idle_thread.c)' 'memprof shim preloaded, defaults' \
		'memprof, MEMPROF_WRITER=thread' 'memprof run (defaults; front end and collector counted)'; do
		# The collector's part: 0 for the idle thread, above 0 for the rest.
		local col=$profiled
		[[ $c == 'an idle thread'* ]] && col=$p
		echo "$output" | grep -Eq "^\| sqlite \| $(printf '%s' "$c" | sed 's/[().;]/\\&/g') \| 1 \| \*\*[0-9]\.[0-9]{3}\*\* \| [0-9.]+–[0-9.]+ \| [0-9]\.[0-9]{3} \| $p \| $p \| $p \| $col \| $p \|$" ||
			{ echo "no row for $c"; return 1; }
	done
	echo "$output" | grep -q '^| sqlite | bare | 1 | 1.000 |'
	sed -n '/<!-- bench\/timeshares:begin/,/<!-- bench\/timeshares:end/p' results.md | grep -q '^| sqlite | bare |'
	local cut='/<!-- bench\/timeshares:begin/,/<!-- bench\/timeshares:end/d'
	diff <(sed "$cut" "$ROOT/bench/RESULTS.md" | grep -v '^$') <(sed "$cut" results.md | grep -v '^$')
}

# bench/collector_cpu the same way (a few seconds): a tenth of sqlite's
# inserts, one measured run, and its row with the collector's CPU above 0.
@test "bench/collector_cpu: a smoke run gives the collector's CPU beside the program's" {
	run env BENCH_SIZE_DIV=10 BENCH_ROUNDS=1 BENCH_WORKLOADS=sqlite "$ROOT/bench/collector_cpu"
	echo "$output" | tail -n 3 | sed 's/^/# /' >&3
	[ "$status" -eq 0 ]
	echo "$output" | grep -q "^Measured by \`BENCH_ROUNDS=1 BENCH_WORKLOADS='sqlite' BENCH_SIZE_DIV=10 bench/collector_cpu\`"
	row=$(echo "$output" | grep -E '^\| sqlite \| [0-9]+ \| [0-9]+\.[0-9] \| [0-9.]+–[0-9.]+ \| [0-9.]+% \|$')
	read -r prog coll < <(echo "$row" | awk -F' \\| ' '{ print $2, $3 }')
	[ "$prog" -gt 0 ]
	awk -v c="$coll" 'BEGIN { exit !(c > 0) }'
}
