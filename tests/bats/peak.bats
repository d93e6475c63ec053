#!/usr/bin/env bats
# The peak heap profile: the in-use heap as it was at its highest, in a file
# beside the dumps and over HTTP as heap?peak=1.

load test_helper

@test "the peak profile shows phase_a's 64 MiB and nothing of phase_b; the exit profile shows phase_b" {
	# A fixed seed: the same draw on every run (see heap.bats).
	MEMPROF_SEED=42 "$MEMPROF" run -o out --rate 65536 -- "$T/target_peak"
	peak=$(echo out/target_peak.*.peak.heap.pb.gz)
	final=$(echo out/target_peak.*.0001.heap.pb.gz)
	[ -f "$peak" ] && [ -f "$final" ]
	within "$(flat "$peak" inuse_space phase_a)" $((64 * 1024 * 1024)) 10
	[ "$(flat "$peak" inuse_space phase_b)" -eq 0 ]
	[ "$(flat "$peak" alloc_space phase_b)" -eq 0 ]
	within "$(flat "$final" inuse_space phase_b)" $((16 * 1024 * 1024)) 10
	[ "$(flat "$final" inuse_space phase_a)" -eq 0 ]
	run pprof -raw "$peak"
	[[ $output == *"the in-use heap when it was at its highest: "* ]]
}

@test "at rate 1 too the peak profile shows phase_a's 64 MiB: a heap that grows fast is sent as it grows" {
	# Full trace sends totals every 100 ms (shim/tally.c); phase_a rises
	# to 64 MiB and falls again in a few milliseconds, between two of
	# those. A thread whose heap grew by a 32nd asks for them at once.
	"$MEMPROF" run -o out --rate 1 --cpu-hz 0 -- "$T/target_peak"
	peak=$(echo out/target_peak.*.peak.heap.pb.gz)
	within "$(flat "$peak" inuse_space phase_a)" $((64 * 1024 * 1024)) 10
	[ "$(flat "$peak" inuse_space phase_b)" -eq 0 ]
	[ "$(flat "$(echo out/target_peak.*.0001.heap.pb.gz)" alloc_objects phase_a)" -eq 4096 ]
}

@test "USR2 writes the peak so far, and heap?peak=1 serves it" {
	MEMPROF_SEED=42 "$MEMPROF" run -o out --rate 65536 --http 127.0.0.1:0 \
		-- "$T/target_peak" wait >prog.out 2>run.err &
	BG_PIDS+=($!)
	RUN_PID=$!
	wait_for_line prog.out '^ready'
	PID=$(awk '/^ready/ { print $2 }' prog.out)
	kill -USR2 "$PID"
	peak=$(wait_for_file "out/target_peak.$PID.peak.heap.pb.gz" 2)
	within "$(flat "$peak" inuse_space phase_a)" $((64 * 1024 * 1024)) 10

	wait_for_line run.err 'http://127\.0\.0\.1:[0-9]+'
	url=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' run.err | head -1)/debug/pprof
	curl -sS -o web.pb.gz "$url/heap?pid=$PID&peak=1"
	within "$(flat web.pb.gz inuse_space phase_a)" $((64 * 1024 * 1024)) 10
	[ "$(flat web.pb.gz inuse_space phase_b)" -eq 0 ]
	curl -sS -o now.pb.gz "$url/heap?pid=$PID"
	[ "$(flat now.pb.gz inuse_space phase_a)" -eq 0 ]
	run curl -sS -w ' %{http_code}' "$url/heap?pid=$PID&peak=2"
	[ "$output" = "peak wants 0 (now) or 1 (the in-use heap at its highest), not '2'
 400" ]

	kill -USR1 "$PID"
	wait "$RUN_PID"
}
