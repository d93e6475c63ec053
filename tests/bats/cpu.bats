#!/usr/bin/env bats
# CPU profiles: per-thread SIGPROF timers, unwound by the collector.

load test_helper

ratio_within() { # ratio_within A B LOW HIGH: A/(A+B) in [LOW, HIGH]
	local r
	r=$(awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / (a + b) }')
	echo "# split $r (want $3..$4)" >&3
	awk -v r="$r" -v lo="$3" -v hi="$4" 'BEGIN { exit !(r >= lo && r <= hi) }'
}

@test "two threads spending 3:1 in burn_a and burn_b show a 75/25 split, and the CPU adds up" {
	run "$MEMPROF" run -o out -- "$T/target_cpu" split 2
	[ "$status" -eq 0 ]
	cpu_ns=$(echo "$output" | awk '/^cpu_ns/ { print $2 }')
	f=$(echo out/target_cpu.*.0001.cpu.pb.gz)
	a=$(cum "$f" cpu burn_a)
	b=$(cum "$f" cpu burn_b)
	ratio_within "$a" "$b" 0.67 0.83
	within "$(total cpu out/target_cpu.*.cpu.pb.gz)" "$cpu_ns" 15
	run pprof -raw "$f"
	[[ $output == *"samples/count cpu/nanoseconds[dflt]"* ]]
	[[ $output == *"PeriodType: cpu nanoseconds"* ]]
	[[ $output == *"Period: 10000000"* ]]
	[[ $output == *"Duration: "* ]]
	all_locations_named "$f"
}

@test "a program that mostly sleeps records almost no CPU" {
	# It records next to nothing, maybe no sample at all: --all asks for
	# its files anyway.
	run "$MEMPROF" run -o out --all -- "$T/target_cpu" sleep 2
	[ "$status" -eq 0 ]
	cpu=$(total cpu out/target_cpu.*.cpu.pb.gz)
	echo "# $cpu ns of CPU recorded over 2 s of sleep" >&3
	[ "$cpu" -le 50000000 ]
}

@test "after fork, the child's samples land in the child's files" {
	run "$MEMPROF" run -o out -- "$T/target_cpu" fork 1
	[ "$status" -eq 0 ]
	parent=$(echo "$output" | awk '/^parent/ { print $2 }')
	child=$(echo "$output" | awk '/^child/ { print $2 }')
	pf=out/target_cpu.$parent.0001.cpu.pb.gz
	cf=out/target_cpu.$child.0001.cpu.pb.gz
	within "$(cum "$pf" cpu parent_burn)" 1000000000 25
	within "$(cum "$cf" cpu child_burn)" 1000000000 25
	[ "$(cum "$pf" cpu child_burn)" -eq 0 ]
	[ "$(cum "$cf" cpu parent_burn)" -eq 0 ]
}

@test "a program that profiles itself with ITIMER_PROF keeps its ticks; memprof steps aside" {
	bare=$("$T/target_cpu" own-sigprof)
	[[ $bare == "ok: "* ]]
	run "$MEMPROF" run -o out -- "$T/target_cpu" own-sigprof
	[ "$status" -eq 0 ]
	echo "$output" | sed 's/^/# /' >&3
	[ "${lines[0]}" = "memprof: the program runs its own profiling timer (setitimer); CPU profiling is off" ]
	[[ ${lines[1]} == "ok: "* ]]
	[ "${#lines[@]}" -eq 2 ]
}

@test "a SIGPROF handler without a timer keeps its signals, and memprof keeps its samples" {
	[ "$("$T/target_cpu" handler-only 0.1)" = "handler kept, 3 signals" ]
	run "$MEMPROF" run -o out -- "$T/target_cpu" handler-only 1
	[ "$status" -eq 0 ]
	# The program's handler saw its three signals and none of memprof's.
	[ "$output" = "handler kept, 3 signals" ]
	within "$(cum out/target_cpu.*.cpu.pb.gz cpu burn_a)" 1000000000 25
}

@test "a SIGPROF left at its default still ends the program" {
	run "$T/target_cpu" dfl-sigprof
	bare=$status
	[ "$bare" -eq $((128 + $(kill -l PROF))) ]
	run "$MEMPROF" run -o out -- "$T/target_cpu" dfl-sigprof
	[ "$status" -eq "$bare" ]
	[[ $output != *survived* ]]
}

@test "a program's own SIGUSR2 handler gets kill -USR2; memprof says so once" {
	"$MEMPROF" run -o out -- "$T/target_cpu" own-usr2 >prog.out 2>prog.err &
	BG_PIDS+=($!)
	wait_for_line prog.out '^ready'
	pid=$(awk '/^ready/ { print $2 }' prog.out)
	kill -USR2 "$pid"
	wait_for_line prog.out '^got usr2'
	[ "$(cat prog.err)" = "memprof: the program handles signal USR2 itself: kill -USR2 goes to it, not to memprof (dump with kill -USR2 <collector pid>, or choose MEMPROF_DUMP_SIGNAL)" ]
}

@test "setting SIGPROF to its default is no handler of the program's: nothing said" {
	run "$MEMPROF" run -o out -- "$T/target_cpu" reset-sigprof
	[ "$status" -eq 0 ]
	[ "$output" = reset ]
}

@test "a server that rewrites argv[0] still has its files named after its program" {
	run "$MEMPROF" run -o out -- "$T/target_cpu" retitle
	[ "$status" -eq 0 ]
	child=$(echo "$output" | awk '/^retitled/ { print $2 }')
	ls out/target_cpu.$child.0001.cpu.pb.gz
	[ "$(cum out/target_cpu.$child.0001.cpu.pb.gz cpu child_burn)" -gt 0 ]
}

@test "each dump's CPU profile covers the time since the previous one" {
	run "$MEMPROF" run -o out --interval 1 -- "$T/target_cpu" split 1.5
	[ "$status" -eq 0 ]
	cpu_ns=$(echo "$output" | awk '/^cpu_ns/ { print $2 }')
	n=$(ls out/target_cpu.*.cpu.pb.gz | wc -l)
	echo "# $n CPU profiles" >&3
	[ "$n" -ge 2 ]
	within "$(total cpu out/target_cpu.*.cpu.pb.gz)" "$cpu_ns" 15
	for f in out/target_cpu.*.cpu.pb.gz; do
		d=$(pprof -raw "$f" | awk '/^Duration:/ { print $2 }')
		echo "# $f: $d" >&3
	done
}

@test "--cpu-hz sets the sampling rate; 0 turns CPU profiling off" {
	run "$MEMPROF" run -o out --cpu-hz 1000 -- "$T/target_cpu" split 0.5
	[ "$status" -eq 0 ]
	samples=$(total samples out/target_cpu.*.cpu.pb.gz)
	within "$samples" 1000 20
	run pprof -raw out/target_cpu.*.cpu.pb.gz
	[[ $output == *"Period: 1000000"* ]]
	rm -rf out
	run "$MEMPROF" run -o out --cpu-hz 0 --all -- "$T/target_cpu" split 0.2
	[ "$status" -eq 0 ]
	ls out/target_cpu.*.heap.pb.gz
	! ls out/target_cpu.*.cpu.pb.gz
}

@test "four threads in dlopen/dlclose and malloc/free, profiled at 1000 Hz, neither hang nor crash" {
	# The short version; make stress runs it 50 times for 20 s.
	for i in 1 2 3; do
		run timeout 60 "$MEMPROF" run -o out --cpu-hz 1000 -- "$T/target_dlopen" "$T/libplugin.so" 2
		[ "$status" -eq 0 ]
		[[ $output == "ok "* ]]
	done
	f=$(ls out/target_dlopen.*.cpu.pb.gz | head -1)
	run pprof -top "$f"
	[[ $output == *plugin_allocate* ]]
	all_locations_named out/*.pb.gz
}

@test "the collector's cached unwind rules give libdw's own stacks: C threads, dlopen churn, python3, gcc" {
	start_collector --check-unwinding
	export MEMPROF_SOCKET=$TEST_TMP/sock MEMPROF_CPU_HZ=1000
	LD_PRELOAD=$SHIM "$T/target_cpu" split 2 >/dev/null
	# Libraries come and go: rules for the old code must not be used.
	LD_PRELOAD=$SHIM "$T/target_dlopen" "$T/libplugin.so" 1 >/dev/null
	LD_PRELOAD=$SHIM python3 -c '
import json
d = [{"k": i, "v": str(i) * 3} for i in range(150000)]
print(len(json.loads(json.dumps(d))))' >/dev/null
	awk 'BEGIN { for (i = 0; i < 400; i++) printf "int f%d(int *a, int n) { int s = 0; for (int i = 0; i < n; i++) s += a[i] * %d; return s; }\n", i, i }' >big.c
	LD_PRELOAD=$SHIM gcc -O2 -c big.c -o big.o
	unset MEMPROF_SOCKET MEMPROF_CPU_HZ
	kill -TERM "$COLLECTOR_PID"
	wait "$COLLECTOR_PID" || true
	sed 's/^/# /' collector.err >&3
	# "pid N: unwind check: S samples, R stepped by the cached rules, D of them differed from libdw"
	read -r samples stepped differed < <(sed -n 's/.*unwind check: \([0-9]*\) samples, \([0-9]*\) stepped by the cached rules, \([0-9]*\) of them.*/\1 \2 \3/p' collector.err |
		awk '{ s += $1; r += $2; d += $3 } END { print s + 0, r + 0, d + 0 }')
	echo "# $samples samples, $stepped stepped by the rules, $differed differed" >&3
	[ "$samples" -ge 1000 ]
	[ $((stepped * 10)) -ge $((samples * 9)) ]
	[ "$differed" -eq 0 ]
	! grep -q 'differs from libdw' collector.err
}
