#!/usr/bin/env bats
# make stress: the many-repetition runs and long soaks behind the short
# versions in tests/bats. Slow (about half an hour); not part of make test.

load ../bats/test_helper

@test "heap estimates are unbiased over 40 random seeds, and rarely off by 15%" {
	vals=()
	for i in $(seq 1 "${HEAP_SEEDS:-40}"); do
		# The background job truncates prog.out when it gets to it: the
		# last run's "ready" line must not be found meanwhile.
		rm -rf out prog.out prog.err
		"$MEMPROF" run -o out --rate 65536 -- "$T/target_heap" >prog.out 2>prog.err &
		run_pid=$!
		wait_for_line prog.out '^ready' || { cat prog.out prog.err >&3; false; }
		pid=$(awk '/^ready/ { print $2 }' prog.out)
		[ -n "$pid" ] || { echo "# run $i: no pid in: $(cat prog.out prog.err)" >&3; false; }
		kill -USR2 "$pid"
		f=$(wait_for_file "out/target_heap.$pid.0001.heap.pb.gz" 2)
		vals+=("$(flat "$f" inuse_space hold_small) $(flat "$f" inuse_space hold_big)")
		kill -USR1 "$pid"
		wait "$run_pid"
	done
	printf '%s\n' "${vals[@]}" | awk -v small=$((16 << 20)) -v big=$((48 << 20)) '
		{ s += $1; b += $2; n++
		  if ($1 < small * 0.85 || $1 > small * 1.15) off_s++
		  if ($2 < big * 0.85 || $2 > big * 1.15) off_b++ }
		END {
			printf "# hold_small mean %.4f of truth, %d/%d runs off by >15%%\n", s / n / small, off_s, n > "/dev/fd/3"
			printf "# hold_big   mean %.4f of truth, %d/%d runs off by >15%%\n", b / n / big, off_b, n > "/dev/fd/3"
			exit !(s / n > small * 0.97 && s / n < small * 1.03 && b / n > big * 0.98 && b / n < big * 1.02 && off_s <= 4 && off_b == 0)
		}'
}

@test "eight threads with fork and exec: 50 runs at rate 1 and 50 at the default, all right" {
	expected=$("$T/target_threads")
	for rate in 1 524288; do
		for i in $(seq 1 50); do
			run timeout 60 "$MEMPROF" run -o out --rate "$rate" -- "$T/target_threads"
			[ "$status" -eq 0 ] || { echo "# run $i at rate $rate: status $status" >&3; false; }
			[ "$output" = "$expected" ]
			rm -rf out
		done
	done
}

@test "dlopen/dlclose and malloc/free in four threads at 1000 Hz: 50 runs of 20 s, no hang, no crash" {
	for i in $(seq 1 50); do
		run timeout 120 "$MEMPROF" run -o out --cpu-hz 1000 -- "$T/target_dlopen" "$T/libplugin.so" 20
		[ "$status" -eq 0 ] || { echo "# run $i: status $status: $output" >&3; false; }
		[[ $output == "ok "* ]]
		rm -rf out
	done
}

@test "the CPU split averages 75/25 over 10 runs" {
	for i in $(seq 1 10); do
		rm -rf out
		"$MEMPROF" run -o out -- "$T/target_cpu" split 2 >/dev/null
		f=$(echo out/target_cpu.*.0001.cpu.pb.gz)
		echo "$(cum "$f" cpu burn_a) $(cum "$f" cpu burn_b)"
	done | awk '{ r += $1 / ($1 + $2); n++; printf "# run %d: %.3f\n", n, $1 / ($1 + $2) > "/dev/fd/3" }
		END { printf "# mean %.3f\n", r / n > "/dev/fd/3"; exit !(r / n > 0.72 && r / n < 0.78) }'
}

@test "a two-minute soak of python3 with periodic dumps stays correct" {
	script='
import json, time
end = time.time() + 120
keep, n = [], 0
while time.time() < end:
    d = [{"k": i, "v": str(i) * 5} for i in range(20000)]
    keep.append(json.dumps(d)); keep = keep[-50:]; n += 1
print("rounds", n > 10)'
	run env PYTHONMALLOC=malloc "$MEMPROF" run -o out --interval 5 -- python3 -c "$script"
	[ "$status" -eq 0 ]
	[ "$output" = "rounds True" ]
	n=$(ls out/python3*.[0-9]*.heap.pb.gz | wc -l)
	echo "# $n heap profiles" >&3
	[ "$n" -ge 20 ]
	all_locations_named out/python3*.pb.gz
}
