#!/usr/bin/env bats
# The front end (scripts/memprof): its own one-line messages and exit
# statuses, the environment as defaults, the version, and commands whose
# processes outlive them (daemons) or that memprof cannot see.

bats_require_minimum_version 1.5.0
load test_helper

# Waits up to 10 s for process PID to be gone (or a zombie).
wait_gone() {
	local i state
	for ((i = 0; i < 1000; i++)); do
		state=$(sed 's/.*) //; s/ .*//' "/proc/$1/stat" 2>/dev/null) || return 0
		[ "$state" = Z ] && return 0
		sleep 0.01
	done
	return 1
}

@test "--version and version print the version kept in VERSION, as does the collector" {
	v=$(cat "$ROOT/VERSION")
	run -0 "$MEMPROF" --version
	[ "$output" = "memprof $v" ]
	run -0 "$MEMPROF" version
	[ "$output" = "memprof $v" ]
	run -0 "$COLLECTOR" --version
	[ "$output" = "memprof-collector $v" ]
}

@test "a command that cannot be run gets the shell's status and one line of ours, no line numbers" {
	export TMPDIR=$TEST_TMP/tmp
	mkdir "$TMPDIR"
	run -127 "$MEMPROF" run -o out -- /nonexistent
	[ "$output" = "memprof: /nonexistent: No such file or directory" ]
	run -126 "$MEMPROF" run -o out -- /tmp
	[ "$output" = "memprof: /tmp: Is a directory" ]
	touch not-executable
	run -126 "$MEMPROF" run -o out -- ./not-executable
	[ "$output" = "memprof: ./not-executable: Permission denied" ]
	run -127 "$MEMPROF" run -o out -- no-such-command-here
	[ "$output" = "memprof: no-such-command-here: command not found" ]
	run -127 "$MEMPROF" check -o out -- ./nonexistent arg
	[ "$output" = "memprof: ./nonexistent: No such file or directory" ]
	# Nothing was started, nothing left behind.
	[ -z "$(ls -A "$TMPDIR")" ]
	[ ! -e out ]
}

@test "memprof dump names a pid that does not exist or may not be signalled, and still dumps the others" {
	run -1 "$MEMPROF" dump 999999
	[ "$output" = "memprof: dump: no process 999999" ]
	"$MEMPROF" run -o out -- "$T/target_heap" >prog.out 2>/dev/null &
	front=$!
	BG_PIDS+=($front)
	wait_for_line prog.out '^ready'
	pid=$(awk '/^ready/ { print $2 }' prog.out)
	run -1 "$MEMPROF" dump 999999 "$pid"
	[ "${lines[0]}" = "memprof: dump: no process 999999" ]
	[ "${lines[1]}" = "memprof: asked pid $pid for a dump" ]
	wait_for_file "out/target_heap.$pid.0001.heap.pb.gz" 5
	kill -USR1 "$pid"
	wait "$front"
	# As nobody, where nobody can reach the tree (a clone in a mktemp -d
	# directory, mode 0700, cannot be).
	if [ "$(id -u)" = 0 ] &&
		setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$MEMPROF"; then
		run -1 setpriv --reuid=nobody --regid=nogroup --clear-groups "$MEMPROF" dump $$
		[ "$output" = "memprof: dump: not allowed to signal pid $$" ]
	fi
	run -2 "$MEMPROF" dump 12x
	[ "$output" = "memprof: dump: '12x' is not a process id" ]
}

@test "a command killed by a signal: 128 + N, the signal named, no wrong guess at a cause" {
	run -137 "$MEMPROF" run -o out -- sh -c 'kill -KILL $$'
	[ "$output" = "memprof: sh was killed by SIGKILL" ]
	run -143 "$MEMPROF" check -o out -- sh -c 'kill -TERM $$'
	[ "$output" = "memprof: sh was killed by SIGTERM" ]
	# Killed, and nothing reported (it is static): still only the signal.
	run -137 "$MEMPROF" check -o out -- "$T/static_hello" kill
	[ "${lines[0]}" = "static hello" ]
	[ "${lines[1]}" = "memprof: $T/static_hello was killed by SIGKILL" ]
	[ "${#lines[@]}" -eq 2 ]
}

@test "when nothing reported, the one cause that applies is given" {
	run -0 "$MEMPROF" run -o out -- "$T/static_hello"
	[ "${lines[0]}" = "static hello" ]
	[ "${lines[1]}" = "memprof: nothing was profiled: $T/static_hello is statically linked" ]
	[ "${#lines[@]}" -eq 2 ]
	run -3 "$MEMPROF" run -o out -- "$T/static_hello" 3
	[ "${lines[1]}" = "memprof: nothing was profiled: $T/static_hello is statically linked" ]
	if [ "$(id -u)" = 0 ]; then
		cp "$T/target_threads" suid-prog
		chown nobody suid-prog
		chmod 4755 suid-prog
		run -0 "$MEMPROF" run -o out -- ./suid-prog
		[ "${lines[${#lines[@]} - 1]}" = "memprof: nothing was profiled: ./suid-prog is setuid or setgid (the loader ignores LD_PRELOAD for it)" ]
	fi
}

@test "a process of the tree that becomes a program memprof cannot see is named with its pid and why" {
	run -0 "$MEMPROF" run -o out -- sh -c "exec '$T/static_hello'"
	[ "${lines[0]}" = "static hello" ]
	[[ ${lines[1]} =~ ^"memprof: pid "[0-9]+" ($T/static_hello) was not profiled: statically linked"$ ]]
	[ "${#lines[@]}" -eq 2 ]
	run -0 "$MEMPROF" run -o out -- env -u LD_PRELOAD /bin/true
	[[ $output =~ ^"memprof: pid "[0-9]+" (/bin/true) was not profiled: run with LD_PRELOAD cleared"$ ]]
}

@test "MEMPROF_INTERVAL and MEMPROF_DIR are the defaults of --interval and -o; options win" {
	# sh records nothing: MEMPROF_ALL and --all ask for its files anyway.
	run -0 env MEMPROF_INTERVAL=1 MEMPROF_DIR=envdir MEMPROF_ALL=1 "$MEMPROF" run -- sh -c 'sleep 2.5'
	# Two periodic dumps, then the one at exit.
	ls envdir/sh.*.0003.heap.pb.gz
	run -0 env MEMPROF_INTERVAL=1 MEMPROF_DIR=envdir "$MEMPROF" run -o optdir --interval 0 --all -- sh -c 'sleep 1.5'
	ls optdir/sh.*.0001.heap.pb.gz
	[ -z "$(ls optdir | grep '\.0002\.')" ]
	run -0 env MEMPROF_INTERVAL=1h "$MEMPROF" run -o out -- true
	[ "$output" = "memprof: MEMPROF_INTERVAL=1h is not a number of seconds; using 0 (off)" ]
}

@test "MEMPROF_COLLECTOR names the collector; a bad one is named and the usual one used" {
	printf '#!/bin/sh\ntouch "%s/used"\nexec "%s" "$@"\n' "$TEST_TMP" "$COLLECTOR" >collector.sh
	chmod +x collector.sh
	run -0 env MEMPROF_COLLECTOR="$TEST_TMP/collector.sh" "$MEMPROF" run -o out --all -- true
	[ -e used ]
	ls out/true.*.heap.pb.gz
	run -0 env MEMPROF_COLLECTOR=/nonexistent "$MEMPROF" run -o out -- true
	[ "$output" = "memprof: MEMPROF_COLLECTOR=/nonexistent is not an executable file; using $COLLECTOR" ]
}

@test "MEMPROF_LEAK_EXITCODE and MEMPROF_SUPPRESSIONS are the defaults of check's options; options win" {
	run -7 env MEMPROF_LEAK_EXITCODE=7 "$MEMPROF" check -o out -- "$T/target_leaks"
	run -9 env MEMPROF_LEAK_EXITCODE=7 "$MEMPROF" check -o out --exitcode 9 -- "$T/target_leaks"
	run -23 env MEMPROF_LEAK_EXITCODE=lots "$MEMPROF" check -o out -- "$T/target_leaks"
	[ "${lines[0]}" = "memprof: MEMPROF_LEAK_EXITCODE=lots is not an exit status from 0 to 255; using 23" ]
	printf 'leak:*\n' >all.txt
	run -0 env MEMPROF_SUPPRESSIONS=all.txt "$MEMPROF" check -o out -- "$T/target_leaks"
	[[ $output == *"Suppressed: 103200 byte(s) in 150 allocation(s)."* ]]
	printf 'leak:build_list\n' >some.txt
	run -23 env MEMPROF_SUPPRESSIONS=all.txt "$MEMPROF" check -o out --suppressions some.txt -- "$T/target_leaks"
	[[ $output == *"Suppressed: 3200 byte(s) in 50 allocation(s)."* ]]
	run -23 env MEMPROF_SUPPRESSIONS=nothing-here.txt "$MEMPROF" check -o out -- "$T/target_leaks"
	[ "${lines[0]}" = "memprof: MEMPROF_SUPPRESSIONS=nothing-here.txt is not a readable file; using no suppressions" ]
}

@test "memprof run of a daemon returns at once with its status; the daemon keeps its collector to the end" {
	export TMPDIR=$TEST_TMP/tmp
	mkdir "$TMPDIR"
	start=$(date +%s%N)
	# (run waits for the end of its output pipe: nothing may keep it open.)
	run -0 "$MEMPROF" run -o out --rate 1 -- "$T/target_daemonize" "$TEST_TMP/daemon.pid" 2000
	elapsed_ms=$((($(date +%s%N) - start) / 1000000))
	echo "# returned in $elapsed_ms ms" >&3
	pid=$(cat daemon.pid)
	[ "$output" = "memprof: pid $pid (target_daemonize) is still running; its profiles go to out when it exits" ]
	[ "$elapsed_ms" -lt 1500 ]
	kill -0 "$pid"
	# Its final profile, once it has exited: the 8 MiB it holds.
	f=$(wait_for_file "out/target_daemonize.$pid.0001.heap.pb.gz" 10)
	[ "$(flat "$f" inuse_space daemon_hold)" -eq $((8 << 20)) ]
	# The collector removed the front end's directory on leaving.
	for ((i = 0; i < 500; i++)); do
		[ -z "$(ls -A "$TMPDIR")" ] && break
		sleep 0.01
	done
	[ -z "$(ls -A "$TMPDIR")" ]
}

@test "a bare LD_PRELOAD's private collector still leaves when a process ran a program it cannot see" {
	LD_PRELOAD="$SHIM" sh -c "'$T/static_hello' >/dev/null; exec '$T/static_hello'" >/dev/null
	collector=$(pgrep -f "memprof-collector --private.*$TEST_TMP" || true)
	[ -n "$collector" ]
	BG_PIDS+=($collector)
	wait_gone "$collector"
}

@test "a killed memprof run's collector still leaves once the command has gone, and takes its directory" {
	export TMPDIR=$TEST_TMP/tmp
	mkdir "$TMPDIR"
	"$MEMPROF" run -o out -- "$T/target_heap" >prog.out 2>&1 &
	front=$!
	BG_PIDS+=($front)
	wait_for_line prog.out '^ready'
	prog=$(pgrep -P "$front" -x target_heap)
	collector=$(pgrep -P "$front" -x memprof-collect)
	BG_PIDS+=($prog $collector)
	kill -KILL "$front"
	wait "$front" || true
	kill -USR1 "$prog"
	wait_gone "$prog"
	wait_gone "$collector"
	ls out/target_heap.$prog.0001.heap.pb.gz
	[ -z "$(ls -A "$TMPDIR")" ]
}
