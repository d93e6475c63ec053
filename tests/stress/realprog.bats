#!/usr/bin/env bats
# make stress, issue 10: the full real-program matrix, python3's own test
# suite under memprof, and the descriptor programs 100 times each. Long
# (the python suite alone is about three runs of a minute or more, longer
# if something hangs: each run is cut at 15 minutes).

load ../bats/test_helper
load ../bats/harmless_helper

@test "real programs behave the same under memprof: the full matrix has 0 differences" {
	run "$ROOT/tests/realprog/matrix" --timeout 600 --evidence "$BUILD/realprog/full-$$"
	echo "$output" | sed 's/^/# /' >&3
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^matrix: [0-9]* runs, 0 differed$'
}

@test "python3's own test suite passes under memprof as it does bare" {
	run "$ROOT/tests/realprog/python_suite" --evidence "$BUILD/realprog/python-suite-$$"
	echo "$output" | sed 's/^/# /' >&3
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "python_suite: verdict: pass" ]
}

@test "closefrom(3) then the program's own logs: 100 runs at rate 1, every log exact" {
	bad=$(corrupted_runs 100 "$T/target_fd_closefrom" a.out b.out)
	echo "# $bad of 100 runs corrupted" >&3
	[ "$bad" -eq 0 ]
}

@test "dup2 over descriptors 3 and 4: 100 runs at rate 1 of each kind, every file exact" {
	bad=$(corrupted_runs 100 "$T/target_fd_dup2" f.out)
	bad_pipe=$(corrupted_runs 100 "$T/target_fd_dup2" f.out pipe)
	echo "# $bad of 100 runs corrupted (file on 3 and 4), $bad_pipe of 100 (file on 3, pipe on 4)" >&3
	[ "$bad" -eq 0 ] && [ "$bad_pipe" -eq 0 ]
}

@test "sort of 50 MB: the same output, and a CPU profile of at least 70% of its CPU time" {
	sort_cpu 50
}
