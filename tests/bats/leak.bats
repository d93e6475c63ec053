#!/usr/bin/env bats
# Leak checks: memprof check and MEMPROF_LEAK_CHECK, held to LeakSanitizer's
# verdicts.

bats_require_minimum_version 1.5.0
load test_helper

@test "memprof check reports direct and indirect leaks LSan-style and exits 23" {
	run "$MEMPROF" check -o out -- "$T/target_leaks"
	[ "$status" -eq 23 ]
	echo "$output" | sed 's/^/# /' >&3
	[[ $output == *"ERROR: memprof: detected memory leaks"* ]]
	[[ $output == *"Direct leak of 100000 byte(s) in 100 object(s) allocated from:"* ]]
	[[ $output == *"Direct leak of 64 byte(s) in 1 object(s) allocated from:"* ]]
	[[ $output == *"Indirect leak of 3136 byte(s) in 49 object(s) allocated from:"* ]]
	[[ $output =~ "#0 0x"[0-9a-f]+" in leak_direct "[^\ ]*"tests/c/target_leaks.c:"[0-9]+ ]]
	[[ $output =~ "#0 0x"[0-9a-f]+" in build_list "[^\ ]*"tests/c/target_leaks.c:"[0-9]+ ]]
	# Largest first, direct before indirect, the summary last.
	[ "$(echo "$output" | grep -n 'leak of' | cut -d: -f2 | cut -c1-8 | tr '\n' ' ')" = \
		"Direct l Direct l Indirect " ]
	[ "${lines[${#lines[@]} - 1]}" = "SUMMARY: memprof: 103200 byte(s) leaked in 150 allocation(s)." ]
	# The global block (4096 bytes) is still reachable: not a leak.
	[[ $output != *"4096 byte(s)"* ]]
	# A leak profile beside the others, of the leaked blocks only.
	f=$(echo out/target_leaks.*.leak.pb.gz)
	[ "$(total leaked_space "$f")" -eq 103200 ]
	[ "$(total leaked_objects "$f")" -eq 150 ]
}

@test "suppressions hide what they match and say how much" {
	printf '# LSan format\n\nleak:build_list\n' >supp.txt
	run "$MEMPROF" check -o out --suppressions supp.txt -- "$T/target_leaks"
	[ "$status" -eq 23 ]
	[[ $output == *"Suppressed: 3200 byte(s) in 50 allocation(s)."* ]]
	[ "${lines[${#lines[@]} - 1]}" = "SUMMARY: memprof: 100000 byte(s) leaked in 100 allocation(s)." ]
	[[ $output =~ " "+"50 "+"3200 build_list" ]]
	# Wildcards and anchors, on function, file and module names.
	for pattern in 'leak_dir*' '^leak_direct$' 'target_leaks.c' '*target_leaks' 'build_list'; do
		printf 'leak:%s\nleak:leak_direct\n' "$pattern" >supp2.txt
		run "$MEMPROF" check -o out --suppressions supp2.txt -- "$T/target_leaks"
		echo "# $pattern: status $status" >&3
		[[ $output == *"Suppressed: "* ]]
	done
	printf 'leak:*\n' >all.txt
	run "$MEMPROF" check -o out --suppressions all.txt -- "$T/target_leaks"
	[ "$status" -eq 0 ]
	[[ $output == *"Suppressed: 103200 byte(s) in 150 allocation(s)."* ]]
	[[ $output != *SUMMARY* ]]
}

@test "without leaks: exit 0 and no report" {
	run "$MEMPROF" check -o out -- "$T/target_leaks" none
	[ "$status" -eq 0 ]
	[ "$output" = "none done" ]
}

@test "a main that leaves by pthread_exit: the check runs when its worker returns, and counts no thread as unstopped" {
	# The initial thread lingers as a zombie until the process ends: it
	# has no stack to scan, and was once named as a thread that "could
	# not be stopped". The worker's blocks are freed: nothing leaks.
	expected=$("$T/target_pthread_exit")
	run timeout -s KILL 20 "$MEMPROF" check -o out -- "$T/target_pthread_exit"
	[ "$status" -eq 0 ]
	[ "$output" = "$expected" ]
}

@test "a leaking program's buffered output is not lost when the check ends it" {
	"$MEMPROF" check -o out -- "$T/target_leaks" >stdout.txt 2>/dev/null || status=$?
	[ "${status:-0}" -eq 23 ]
	[ "$(cat stdout.txt)" = "leak done" ]
}

@test "a program memprof cannot see (static) runs; check says nothing was checked and why, and exits 125" {
	run -125 "$MEMPROF" check -o out -- "$T/static_hello"
	[ "${lines[0]}" = "static hello" ]
	[ "${lines[1]}" = "memprof: nothing was checked: $T/static_hello is statically linked" ]
	[ "${#lines[@]}" -eq 2 ]
	# The program's own failure still wins.
	run -4 "$MEMPROF" check -o out -- "$T/static_hello" 4
	[ "${lines[1]}" = "memprof: nothing was checked: $T/static_hello is statically linked" ]
	# A tree whose only process execs a static program: nothing checked.
	run -125 "$MEMPROF" check -o out -- sh -c "exec '$T/static_hello'"
	[[ ${lines[1]} =~ ^"memprof: pid "[0-9]+" ($T/static_hello) was not checked: statically linked"$ ]]
	[ "${lines[2]}" = "memprof: nothing was checked: the processes named above could not be" ]
}

@test "over a tree, the processes exit as they would bare, and only memprof's status says leaks" {
	run -23 "$MEMPROF" check -o out -- sh -c "'$T/target_leaks'; echo child=\$?"
	[ "${lines[0]}" = "leak done" ]
	[ "${lines[${#lines[@]} - 1]}" = "child=0" ]
	# gcc goes on after cc1 leaks, and writes what a bare run writes.
	printf 'int twice(int x) { return 2 * x; }\n' >x.c
	gcc -O2 -c x.c -o bare.o
	run -23 "$MEMPROF" check -o out -- gcc -O2 -c x.c -o x.o
	cmp bare.o x.o
	[[ $output == *"SUMMARY: memprof: "* ]]
}

@test "a process of the tree memprof cannot see is named; the others are still checked" {
	run -23 "$MEMPROF" check -o out -- sh -c "'$T/target_leaks' none; '$T/static_hello'; '$T/target_leaks'"
	[[ $output =~ "memprof: pid "[0-9]+" ($T/static_hello) was not checked: statically linked" ]]
	[ "$(echo "$output" | grep -c 'was not checked')" -eq 1 ]
	[ "$(echo "$output" | grep -c '^SUMMARY')" -eq 1 ]
	run -0 "$MEMPROF" check -o out -- sh -c "'$T/target_leaks' none; '$T/static_hello'"
	[[ $output =~ "memprof: pid "[0-9]+" ($T/static_hello) was not checked: statically linked" ]]
}

@test "check waits for a daemon to exit, says which it waits for, and Ctrl-C or TERM stops the wait" {
	run -0 "$MEMPROF" check -o out -- "$T/target_daemonize" "$TEST_TMP/daemon.pid" 2000
	pid=$(cat daemon.pid)
	[ "$output" = "memprof: waiting for pid $pid (target_daemonize) to exit (Ctrl-C stops waiting)" ]
	ls out/target_daemonize.$pid.*.heap.pb.gz
	# Told to stop waiting: what still runs is named as not checked.
	rm daemon.pid
	"$MEMPROF" check -o out -- "$T/target_daemonize" "$TEST_TMP/daemon.pid" 10000 2>check.err &
	front=$!
	BG_PIDS+=($front)
	wait_for_file daemon.pid 10
	wait_for_line check.err 'waiting for'
	pid=$(cat daemon.pid)
	BG_PIDS+=($pid)
	kill -TERM "$front"
	wait "$front"
	[ "$(tail -1 check.err)" = "memprof: pid $pid ($T/target_daemonize) was not checked: still running" ]
	kill "$pid"
}

@test "--exitcode changes the status for leaks; the program's own failure wins" {
	run "$MEMPROF" check -o out --exitcode 9 -- "$T/target_leaks"
	[ "$status" -eq 9 ]
	run "$MEMPROF" check -o out -- sh -c "'$T/target_leaks'; exit 3"
	[ "$status" -eq 3 ]
	run "$MEMPROF" check --exitcode 300 -- true
	[ "$status" -eq 2 ]
}

@test "MEMPROF_LEAK_CHECK=1 alone checks and sets the exit status" {
	run env MEMPROF_LEAK_CHECK=1 LD_PRELOAD="$SHIM" "$T/target_leaks"
	[ "$status" -eq 23 ]
	[ "${lines[${#lines[@]} - 1]}" = "SUMMARY: memprof: 103200 byte(s) leaked in 150 allocation(s)." ]
}

@test "children are followed: each reports for itself, and the check fails if any leaked" {
	run "$MEMPROF" check -o out -- sh -c "'$T/target_leaks' none; '$T/target_leaks'; '$T/target_leaks' none; exit 0"
	[ "$status" -eq 23 ]
	[ "$(echo "$output" | grep -c '^SUMMARY')" -eq 1 ]
	# A fork child starts with its parent's heap: memory it inherited and
	# still reaches is not its leak (python forks and execs, bash forks).
	run "$MEMPROF" check -o out -- bash -c 'x=$(echo sub); y=$(echo $x); echo $y'
	[ "$status" -eq 0 ]
	[ "$output" = sub ]
}

@test "a second thread still running at exit: no crash, its live memory not reported" {
	run "$MEMPROF" check -o out -- "$T/target_leaks" thread
	[ "$status" -eq 0 ]
	[ "$output" = "thread done" ]
}

@test "memprof check agrees with LeakSanitizer on the test programs and real ones" {
	run "$ROOT/tests/lsan_compare.sh"
	echo "$output" | sed 's/^/# /' >&3
	[ "$status" -eq 0 ]
}
