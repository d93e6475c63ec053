#!/usr/bin/env bats
# The short real-program matrix (issue 10): python3's test_json, perl,
# sqlite3, git, gcc, sort, a daemon-style program and redis-server, each run
# bare and under memprof run at the defaults and at --rate 1, must print,
# write and exit exactly as bare. The full matrix is in tests/stress.

load test_helper

@test "real programs behave the same under memprof: the short matrix has 0 differences" {
	run "$ROOT/tests/realprog/matrix" --short --timeout 120 --evidence "$BUILD/realprog/short-$$"
	echo "$output" | sed 's/^/# /' >&3
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^matrix: [0-9]* runs, 0 differed$'
}
