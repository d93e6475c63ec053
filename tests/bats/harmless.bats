#!/usr/bin/env bats
# Issue 10: the profiled program exits, writes and handles signals exactly
# as it does bare. Each test runs one of the small programs that provoke a
# harm seen in real programs (tests/c/target_{pthread_exit,fork_in_thread,
# fd_closefrom,fd_dup2,sigprof_handler}.c) and compares with a bare run.
# Hangs are cut short with SIGKILL, since a hung process may ignore TERM.
# The many-run versions are in tests/stress/realprog.bats.

bats_require_minimum_version 1.5.0
load test_helper
load harmless_helper

@test "a main that leaves by pthread_exit exits with status 0 once its worker returns" {
	expected=$("$T/target_pthread_exit")
	run --separate-stderr shim "$T/target_pthread_exit"
	[ "$status" -eq 0 ] || { echo "# status $status (137: still alive after 10 s)" >&3; false; }
	[ "$output" = "$expected" ]
	run --separate-stderr timeout -s KILL 10 "$MEMPROF" run -o out -- "$T/target_pthread_exit"
	[ "$status" -eq 0 ]
	[ "$output" = "$expected" ]
}

@test "a child forked from a non-main thread exits 0 when that thread returns" {
	expected=$("$T/target_fork_in_thread")
	run --separate-stderr shim "$T/target_fork_in_thread"
	[ "$status" -eq 0 ] || { echo "# status $status (137: still alive after 10 s)" >&3; false; }
	[ "$output" = "$expected" ]
	run --separate-stderr timeout -s KILL 10 "$MEMPROF" run -o out -- "$T/target_fork_in_thread"
	[ "$status" -eq 0 ]
	[ "$output" = "$expected" ]
}

@test "closefrom(3) then the program's own logs: 20 runs at rate 1, every log exact" {
	bad=$(corrupted_runs 20 "$T/target_fd_closefrom" a.out b.out)
	echo "# $bad of 20 runs corrupted" >&3
	[ "$bad" -eq 0 ]
}

@test "dup2 over descriptors 3 and 4: 20 runs at rate 1 of each kind, every file exact" {
	bad=$(corrupted_runs 20 "$T/target_fd_dup2" f.out)
	bad_pipe=$(corrupted_runs 20 "$T/target_fd_dup2" f.out pipe)
	echo "# $bad of 20 runs corrupted (file on 3 and 4), $bad_pipe of 20 (file on 3, pipe on 4)" >&3
	[ "$bad" -eq 0 ] && [ "$bad_pipe" -eq 0 ]
}

@test "a pipe handed to a profiled program sees EOF when the program exits, not when the collector does" {
	# Best of 5, so that a loaded machine does not decide it.
	best() {
		local i t0 t1 min=999999
		for i in 1 2 3 4 5; do
			t0=$(date +%s%N)
			"$@" 2>&1 | cat >/dev/null
			t1=$(date +%s%N)
			(((t1 - t0) / 1000000 < min)) && min=$(((t1 - t0) / 1000000))
		done
		echo "$min"
	}
	bare=$(close_fds && best "$T/target_fd_dup2" f.out 10)
	profiled=$(close_fds && best env LD_PRELOAD="$SHIM" MEMPROF_DIR=out "$T/target_fd_dup2" f.out 10)
	echo "# prog 2>&1 | cat: bare $bare ms, under the shim $profiled ms" >&3
	[ $((profiled - bare)) -le 50 ]
}

@test "a SIGPROF handler with no timer of its own keeps its signals, and memprof keeps its CPU samples" {
	expected=$("$T/target_sigprof_handler")
	[ "$expected" = "handler calls: 0 during the burn, 3 after three SIGPROFs" ]
	run --separate-stderr timeout -s KILL 30 "$MEMPROF" run -o out -- "$T/target_sigprof_handler"
	[ "$status" -eq 0 ]
	[ "$output" = "$expected" ]
	f=$(echo out/target_sigprof_handler.*.0001.cpu.pb.gz)
	cpu=$(total cpu "$f")
	burn=$(($(cum "$f" cpu burn_a) + $(cum "$f" cpu burn_b)))
	echo "# CPU profile: ${cpu:-0} ns in all, $burn ns in burn_a and burn_b (about 1 s burnt)" >&3
	[ "$burn" -ge 700000000 ]
}

@test "a program that arms ITIMER_PROF itself still gets its ticks" {
	run --separate-stderr timeout -s KILL 30 "$MEMPROF" run -o out -- "$T/target_sigprof_handler" itimer
	[ "$status" -eq 0 ]
	[ "$output" = "itimer: the handler saw ticks: yes" ]
}

@test "memprof has no descriptor in the program's table, nor in a forked child's, at any rate, and no thread at the default rate" {
	# bash lists its own descriptors and a forked subshell's (ls's
	# /proc/self/fd would be ls's), bare and under memprof run at the
	# default rate and at rate 1.
	local list='ls /proc/$$/fd; echo --; (ls /proc/$BASHPID/fd); echo --; ls /proc/$$/task | wc -l'
	only_012() { bash -c "$(declare -f close_fds); close_fds; exec \"\$@\"" _ "$@"; }
	bare=$(only_012 bash -c "$list")
	echo "# bare: $(echo $bare)" >&3
	# The same descriptors. At the default rate no thread either (the
	# shared ring); at rate 1 two (the writer, the keeper).
	for run in "524288 0" "1 2"; do
		set -- $run
		profiled=$(only_012 "$MEMPROF" run -o out --rate $1 -- bash -c "$list")
		echo "# rate $1: $(echo $profiled)" >&3
		[ "$(echo "$profiled" | sed '$d')" = "$(echo "$bare" | sed '$d')" ]
		[ "$(echo "$profiled" | tail -1)" -eq $(($(echo "$bare" | tail -1) + $2)) ]
	done
}

@test "where unshare is refused (a container's seccomp filter), the socket is the one high descriptor, and all else holds" {
	local list='ls /proc/$$/fd; echo --; ls /proc/$$/task | wc -l'
	no_unshare() { bash -c "$(declare -f close_fds); close_fds; exec \"\$@\"" _ "$T/target_no_unshare" "$@"; }
	run ! "$T/target_no_unshare" unshare --files true # the filter holds
	bare=$(no_unshare bash -c "$list")
	profiled=$(no_unshare "$MEMPROF" run -o out --rate 1 -- bash -c "$list")
	echo "# bare: $(echo $bare); profiled: $(echo $profiled)" >&3
	# One more descriptor, high up (fd.c); one thread more (the writer).
	[ "$(echo "$profiled" | sed '/^--$/,$d' | awk '$1 >= 256' | wc -l)" -eq 1 ]
	[ "$(echo "$profiled" | sed '/^--$/,$d' | awk '$1 < 256')" = "$(echo "$bare" | sed '/^--$/,$d')" ]
	[ "$(echo "$profiled" | tail -1)" -eq $(($(echo "$bare" | tail -1) + 1)) ]
	# The cases the writer's own table is for, the old way.
	run --separate-stderr no_unshare "$MEMPROF" run -o out2 --rate 1 -- "$T/target_fd_closefrom" a.out b.out
	[ "$status" -eq 0 ]
	[ "$(cum "$(ls out2/target_fd_closefrom.*.[0-9]*.heap.pb.gz)" alloc_objects churn)" -eq 20100 ]
	expected=$("$T/target_pthread_exit")
	run --separate-stderr timeout -s KILL 10 "$T/target_no_unshare" "$MEMPROF" run -o out3 -- "$T/target_pthread_exit"
	[ "$status" -eq 0 ]
	[ "$output" = "$expected" ]
	run timeout -s KILL 60 "$T/target_no_unshare" "$MEMPROF" check -o out4 -- "$T/target_leaks"
	[ "$status" -eq 23 ]
	[ "${lines[${#lines[@]} - 1]}" = "SUMMARY: memprof: 103200 byte(s) leaked in 150 allocation(s)." ]
}

@test "a program that leaves by _exit or _Exit right after allocating: every allocation is in its profile" {
	# No exit handlers, so no goodbye: what the writer had not sent when
	# the process ended used to be lost (a shell's last exec notice, too).
	for how in _exit _Exit; do
		rm -rf out
		run -3 "$MEMPROF" run -o out --rate 1 -- "$T/target_quick_exit" 5000 $how
		[ "$(cum "$(ls out/target_quick_exit.*.[0-9]*.heap.pb.gz)" alloc_objects keep_quick)" -eq 5000 ]
	done
}

@test "another allocator preloaded after memprof: the bytes before its blocks are never read, and every block is counted" {
	# libguarded_alloc puts every block right after an inaccessible page.
	# memprof puts no header on another allocator's blocks; reading one
	# anyway (free() at rate 1 once did) is a crash here every time, and
	# was one in redis, whose jemalloc sometimes starts a block a page
	# after an unmapped one.
	# A private collector each (the shim starts it, without the allocator),
	# each with a directory of its own: it writes there after the program
	# has gone.
	for rate in 4096 1; do
		run env LD_PRELOAD="$SHIM $T/libguarded_alloc.so" MEMPROF_DIR=out-$rate \
			MEMPROF_RATE=$rate "$T/target_same_stack"
		[ "$status" -eq 0 ]
		[ "$output" = "via_a 30000 via_b 20000 leaf 50000 deep 20000" ]
	done
	# At rate 1 every block, none of them with a header.
	f=$(wait_for_file "out-1/target_same_stack.*.0001.heap.pb.gz" 5)
	[ "$(flat "$f" alloc_objects leaf)" -eq 50000 ]
	run env LD_PRELOAD="$SHIM $T/libguarded_alloc.so" MEMPROF_DIR=out-api MEMPROF_RATE=1 \
		"$T/target_alloc_api"
	[ "$status" -eq 0 ]
}

@test "a program that closes memprof's socket (closefrom) is still profiled after it" {
	# Every allocation at rate 1: 100 before closefrom(3), 20000 after.
	run --separate-stderr bash -c "$(declare -f close_fds); close_fds; exec \"\$@\"" _ \
		"$MEMPROF" run -o out --rate 1 -- "$T/target_fd_closefrom" a.out b.out
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	f=$(ls out/target_fd_closefrom.*.[0-9]*.heap.pb.gz)
	[ "$(echo "$f" | wc -l)" -eq 1 ]
	[ "$(cum "$f" alloc_objects churn)" -eq 20100 ]
}

@test "sort of 20 MB: the same output, and a CPU profile of at least 70% of its CPU time" {
	sort_cpu 20
}
