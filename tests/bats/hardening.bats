#!/usr/bin/env bats
# The collector against hostile or careless clients and users (issue 12):
# each test reproduces one defect found by probing it, and checks it is gone.
# Longer variants of the same probes are in tests/stress/.

bats_require_minimum_version 1.5.0
load test_helper

# A collector on a socket in the test directory, serving HTTP on a port of
# the kernel's choice; sets COLLECTOR_PID and URL (the /debug/pprof/ base).
start_collector() {
	"$COLLECTOR" --socket "$TEST_TMP/sock" --dir out --http 127.0.0.1:0 "$@" 2>collector.err &
	COLLECTOR_PID=$!
	BG_PIDS+=($COLLECTOR_PID)
	disown
	wait_for_line collector.err 'http: listening on 127\.0\.0\.1:[0-9]+ '
	URL=http://127.0.0.1:$(sed -n 's/.*http: listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' collector.err)/debug/pprof
	for ((i = 0; i < 500; i++)); do
		[ -S "$TEST_TMP/sock" ] && return 0
		sleep 0.01
	done
	return 1
}

# The HTTP status of URL, given at most SECONDS (default 5) to answer.
status_of() {
	curl -s -o /dev/null --max-time "${2:-5}" -w '%{http_code}' "$1" || true
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

@test "a FIFO or /dev/zero as suppressions is refused at once, and the collector serves on" {
	start_collector
	mkfifo "$TEST_TMP/fifo"
	for sup in "$TEST_TMP/fifo" /dev/zero; do
		start=$(now_ms)
		run -23 timeout 10 env MEMPROF_SOCKET="$TEST_TMP/sock" MEMPROF_LEAK_CHECK=1 \
			MEMPROF_SUPPRESSIONS="$sup" LD_PRELOAD="$SHIM" "$T/target_leaks"
		elapsed=$(($(now_ms) - start))
		echo "# $sup: checked in $elapsed ms" >&3
		[[ $output == *"memprof: suppressions $sup not used: not a regular file"* ]]
		[[ $output == *"SUMMARY: memprof: 103200 byte(s) leaked in 150 allocation(s)."* ]]
		[ "$elapsed" -lt 1000 ]
		grep -q "suppressions $sup not used: not a regular file" collector.err
		[ "$(status_of "$URL/")" = 200 ]
	done
}
