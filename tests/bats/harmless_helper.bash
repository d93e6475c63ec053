# Helpers for the tests of issue 10's harms (tests/bats/harmless.bats and
# tests/stress/realprog.bats): running a program under the bare shim with a
# time limit, and counting the runs whose files come out unlike a bare run's.

# Closes every descriptor above 2 in this (sub)shell, so that a program
# starts with 0, 1 and 2 only, as from a terminal: bats keeps 3 and 4 open
# for itself, which would push memprof's and libunwind's descriptors above
# the numbers the programs dup2 over, and hide the harm.
close_fds() {
	local fd
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		[ "$fd" -gt 2 ] && eval "exec $fd>&-"
	done
	return 0
}

# Runs "$@" with the shim preloaded (private collector), at most 10 s, with
# only descriptors 0, 1 and 2.
shim() {
	(
		close_fds
		exec timeout -s KILL 10 env LD_PRELOAD="$SHIM" MEMPROF_DIR="$TEST_TMP/out" "$@"
	)
}

# corrupted_runs N PROG ARGS...: runs PROG N times at MEMPROF_RATE=1 under the
# bare shim (ARGS name its files: a.out, b.out, as in the bare run kept in
# bare/), and prints how many runs left files, output or a status unlike the
# bare run's. Known and counted apart (one line on fd 3, not in the count):
# runs whose only difference is the descriptor numbers the program says it
# got, when the shim's writer reconnected after the program's closefrom and
# its new socket held a low number for the instant before it is moved high
# (about 1 run in 100 at rate 1: see the README's descriptor rules).
corrupted_runs() {
	local n=$1 i bad=0 shifted=0
	shift
	mkdir -p bare
	(cd bare && "$@" >stdout)
	for ((i = 0; i < n; i++)); do
		rm -rf run && mkdir run
		(cd run && MEMPROF_RATE=1 shim "$@" >stdout 2>stderr; echo $? >status)
		if ! diff -q <(cd bare && cat ./*.out) <(cd run && cat ./*.out) >/dev/null ||
			[ "$(cat run/status)" != 0 ]; then
			bad=$((bad + 1))
			[ "$bad" -eq 1 ] && {
				echo "# run $((i + 1)): status $(cat run/status), sizes $(cd run && wc -c ./*.out | tr '\n' ' ')" >&3
				sed 's/^/#   /' run/stderr >&3
			}
		elif ! diff -q bare/stdout run/stdout >/dev/null; then
			if [ "$(sed 's/on [0-9]* and [0-9]*/on N and N/' bare/stdout)" = \
				"$(sed 's/on [0-9]* and [0-9]*/on N and N/' run/stdout)" ]; then
				shifted=$((shifted + 1))
			else
				bad=$((bad + 1))
			fi
		fi
	done
	[ "$shifted" -eq 0 ] || echo "# $shifted of $n runs: the program got other descriptor numbers (files exact)" >&3
	echo "$bad"
}

# sort_cpu MEGABYTES: sorts a generated file bare and under memprof run;
# the output must be the same, and the CPU profile must account for at
# least 70% of the CPU time `time` reports for that profiled sort (timed
# in the same run: a bare run timed apart differs by more than 20% on a
# busy machine), most of it under sort's own code (Debian's sort is
# stripped: its frames are named sort+0x...).
sort_cpu() {
	local mb=$1
	awk -v n=$((mb * 1024 * 1024 / 40)) 'BEGIN {
		s = 42; for (i = 0; i < n; i++) {
			s = (s * 1103515245 + 12345) % 2147483648
			printf "%08x line %d of the input, %d\n", s, i, s % 977 } }' >big.txt
	sort -o out.bare big.txt
	"$MEMPROF" run -o out -- bash -c "TIMEFORMAT='%U %S'; time sort -o out.mp big.txt" 2>times.txt
	local bare_ns
	bare_ns=$(awk '/^[0-9.]+ [0-9.]+$/ { printf "%d", ($1 + $2) * 1e9 }' times.txt)
	[ -n "$bare_ns" ] || { cat times.txt; false; }
	cmp out.bare out.mp
	f=$(ls out/sort.*.cpu.pb.gz)
	local got in_sort
	got=$(total cpu "$f")
	in_sort=$(pprof -unit=ns -focus='^sort\+0x' -top "$f" | awk '/^Showing nodes accounting for/ {
		v = $5; gsub(/[^0-9]/, "", v); print v; exit }')
	echo "# sort of $mb MB: time says $bare_ns ns of CPU, profile $got ns, $in_sort ns under sort's own code" >&3
	[ "$got" -ge $((bare_ns * 7 / 10)) ] # 14 runs: 0.915-1.073, sd 0.04
	[ "$in_sort" -ge $((got / 2)) ]
}
