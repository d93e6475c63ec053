#!/usr/bin/env bats
# Bad settings, missing, dying, stalled and hostile collectors: the program
# always runs on and prints what it would print without memprof.

bats_require_minimum_version 1.5.0
load test_helper

@test "an unparsable setting is named in one line on stderr and the program runs on" {
	expected=$("$T/target_threads")
	for setting in MEMPROF_RATE=lots MEMPROF_CPU_HZ=-5 MEMPROF_INTERVAL=1h \
		MEMPROF_DUMP_SIGNAL=SIGNOPE MEMPROF_SEED=x1 MEMPROF_RATE=12q; do
		name=${setting%%=*}
		run env "$setting" "$MEMPROF" run -o out -- "$T/target_threads"
		[ "$status" -eq 0 ]
		# Exactly one line about it, though the program forks and execs.
		[ "${#lines[@]}" -eq 2 ]
		[[ ${lines[0]} == "memprof: $setting is not "*"; using "* ]]
		[ "${lines[1]}" = "$expected" ]
	done
}

@test "a misspelt MEMPROF_ variable is named" {
	run env MEMPROF_RAT=1 "$MEMPROF" run -o out -- true
	[ "$status" -eq 0 ]
	[[ $output == *"unknown setting MEMPROF_RAT ignored"* ]]
}

@test "with no collector at MEMPROF_SOCKET the program runs and says so once" {
	expected=$("$T/target_threads")
	run env MEMPROF_SOCKET="$TEST_TMP/nobody-here" LD_PRELOAD="$SHIM" "$T/target_threads"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "memprof: cannot reach the collector at $TEST_TMP/nobody-here (No such file or directory); profiling is off" ]
	[ "${lines[1]}" = "$expected" ]
}

# target_threads at MEMPROF_RATE=$1 with its collector killed mid-run: it
# must print what it prints bare.
run_collector_killed() {
	expected=$("$T/target_threads")
	start_collector --verbose
	MEMPROF_SOCKET="$TEST_TMP/sock" MEMPROF_RATE=$1 LD_PRELOAD="$SHIM" "$T/target_threads" >prog.out 2>prog.err &
	prog=$!
	BG_PIDS+=($prog)
	# Mid-run for certain, on any machine: once connected, the program
	# is stopped while its collector is killed, and goes on with all its
	# allocating left to do (a sleep first let a fast machine finish).
	wait_for_line collector.err '\(target_threads\) connected'
	kill -STOP "$prog"
	kill -KILL "$COLLECTOR_PID"
	wait "$COLLECTOR_PID" || true
	kill -CONT "$prog"
	wait "$prog"
	[ "$(cat prog.out)" = "$expected" ]
}

@test "a collector killed mid-run does not harm the program" {
	run_collector_killed 1
	grep -q "lost the collector" prog.err
}

@test "at the defaults too (the shared ring), a collector killed mid-run does not harm the program" {
	run_collector_killed 4096
}

# The shared ring outlives its process: what a program recorded before a
# kill -9 is in its final profile.
@test "a program killed with SIGKILL at the defaults: its final profile has its heap" {
	start_collector
	MEMPROF_SOCKET="$TEST_TMP/sock" MEMPROF_SEED=42 MEMPROF_RATE=65536 LD_PRELOAD="$SHIM" \
		"$T/target_heap" >prog.out &
	prog=$!
	BG_PIDS+=($prog)
	wait_for_line prog.out '^ready'
	kill -KILL "$prog"
	wait "$prog" || true
	f=$(wait_for_file "out/target_heap.$prog.0001.heap.pb.gz" 5)
	within "$(flat "$f" inuse_space hold_big)" $((48 * 1024 * 1024)) 15
	within "$(flat "$f" inuse_space hold_small)" $((16 * 1024 * 1024)) 15
}

@test "a stopped collector never blocks a sampling program; the drops are reported" {
	expected=$("$T/target_threads")
	start_collector
	kill -STOP "$COLLECTOR_PID"
	# A low rate makes far more events than the socket and ring can hold.
	# The program finishes, exit included, though nothing is read: exit
	# waits only a second for a collector that takes nothing.
	start=$(date +%s%N)
	run env MEMPROF_SOCKET="$TEST_TMP/sock" MEMPROF_RATE=512 LD_PRELOAD="$SHIM" "$T/target_threads"
	elapsed_ms=$((($(date +%s%N) - start) / 1000000))
	echo "# ran in $elapsed_ms ms with the collector stopped" >&3
	[ "$status" -eq 0 ]
	[ "$output" = "$expected" ]
	# While the program lives, it keeps its count of what it dropped and
	# reports it once the collector reads again.
	MEMPROF_SOCKET="$TEST_TMP/sock" MEMPROF_RATE=512 LD_PRELOAD="$SHIM" "$T/target_heap" >prog.out &
	prog=$!
	BG_PIDS+=($prog)
	wait_for_line prog.out '^ready'
	kill -CONT "$COLLECTOR_PID"
	kill -USR1 "$prog"
	wait "$prog"
	f=$(wait_for_file "out/target_heap.$prog.0001.heap.pb.gz" 5)
	run pprof -raw "$f"
	[[ $output == *"events dropped"* ]]
}

# A shared ring (MP_HELLO_SHARED_RING) is memory the client can change at
# any moment, and the descriptor that brings it could be anything: each
# lie is named, a descriptor that is not the ring is closed at once, and
# an honest ring's records make a profile.
@test "clients that lie about their shared ring are dropped with the reason; stray descriptors are closed" {
	start_collector
	before=$(ls /proc/$COLLECTOR_PID/fd | wc -l)
	python3 - "$TEST_TMP/sock" <<'EOF'
import fcntl, mmap, os, socket, struct, sys, time
OFF, DATA = 4096, 65536
def ring(seal=True):
    fd = os.memfd_create("ring", os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, OFF + DATA)
    if seal:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
    m = mmap.mmap(fd, OFF + DATA)
    struct.pack_into("<II", m, 0, 0x474e5253, DATA)
    return fd, m
def put(m, data):
    head = struct.unpack_from("<Q", m, 64)[0]
    for i, b in enumerate(data):
        m[OFF + (head + i) % DATA] = b
    struct.pack_into("<Q", m, 64, head + len(data))
def hello(flags):
    body = struct.pack("<IIIIQIIQIIII", 0x4f52504d, 5, os.getpid(), 1, 4096, 0, flags, 0, 0, 5, 0, 0) + b"probe"
    return struct.pack("<II", 1, len(body)) + body
def client(kind):
    if os.fork():
        return
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    fds, m = [], None
    if kind in ("unsealed", "badhead", "garbage", "good"):
        fd, m = ring(seal=kind != "unsealed")
        fds = [fd]
    elif kind == "pipe":
        fds = [os.pipe()[0]]
    elif kind == "extra":
        fds = [os.pipe()[0] for _ in range(3)]
    flags = 0 if kind == "extra" else 16
    socket.send_fds(s, [hello(flags)], fds)
    s.close()
    if kind == "badhead":
        struct.pack_into("<Q", m, 64, 4 * DATA)
    elif kind == "garbage":
        put(m, os.urandom(256))
    elif kind == "good":
        stack = struct.pack("<II", 3, 16) + struct.pack("<IIQ", 1, 1, 0x400000)
        alloc = struct.pack("<II", 4, 32) + struct.pack("<QQIIQ", 0x10000000, 1 << 20, 1, 0, 0)
        put(m, stack + alloc + struct.pack("<II", 6, 0))
    time.sleep(1)
    os._exit(0)
for kind in ("nofd", "unsealed", "pipe", "badhead", "garbage", "extra", "good"):
    client(kind)
for _ in range(7):
    os.wait()
EOF
	sleep 0.3
	kill -0 "$COLLECTOR_PID"
	sed 's/^/# /' collector.err >&3
	grep -q "a shared ring was announced but none came with the hello" collector.err
	grep -q "the shared ring can shrink (not sealed)" collector.err
	grep -q "the shared ring is not a memory file" collector.err
	grep -q "its shared ring's write counter is out of range" collector.err
	[ "$(grep -c 'dropping' collector.err)" -eq 5 ]
	# Every descriptor that came is closed, and every ring unmapped.
	[ "$(ls /proc/$COLLECTOR_PID/fd | wc -l)" -eq "$before" ]
	! grep -q memfd: /proc/$COLLECTOR_PID/maps
	# The honest ring's block, in the dump it asked for.
	f=$(ls out/probe.*.0001.heap.pb.gz)
	[ "$(total inuse_space "$f")" = $((1 << 20)) ]
}

@test "a client that sends garbage is dropped and the collector serves everyone else" {
	start_collector
	python3 - "$TEST_TMP/sock" <<'EOF'
import os, socket, struct, sys
def client(data):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(data)
    return s
held = []
held.append(client(os.urandom(4096)))                      # noise
held.append(client(struct.pack("<II", 1, 100) + os.urandom(100)))  # not our hello
held.append(client(struct.pack("<II", 1, 0xffffffff)))     # absurd length
held.append(client(struct.pack("<II", 1, 8) + b"x" * 8))   # short hello
body = struct.pack("<IIIIQIIQIIII", 0x4f52504d, 5, 4242, 1, 4096, 0, 0, 0, 0, 4, 0, 0) + b"fake"
hello = struct.pack("<II", 1, len(body)) + body
held.append(client(hello + struct.pack("<IIQQIIQ", 4, 32, 16, 32, 7, 0, 1)))  # unknown stack
held.append(client(hello + struct.pack("<II", 3, 16) + struct.pack("<IIQ", 5, 1, 4096)))  # ids out of order
def tally(stack_id, size_class, allocs, frees, alloc_bytes, free_bytes):
    return struct.pack("<II", 14, 40) + struct.pack("<IIQQQQ", stack_id, size_class, allocs, frees,
                                                    alloc_bytes, free_bytes)
held.append(client(hello + tally(9, 5, 2, 1, 32, 16)))     # tally, unknown stack
stack = struct.pack("<II", 3, 16) + struct.pack("<IIQ", 1, 1, 4096)
held.append(client(hello + stack + tally(1, 5, 2, 3, 32, 16)))  # frees > allocs
held.append(client(hello + stack + tally(1, 5, 2, 1, 32, 48)))  # freed bytes > allocated
held.append(client(hello + stack + tally(1, 33, 2, 1, 32, 16)))  # no such size class
held.append(client(hello[:20]))                            # truncated, then gone
EOF
	MEMPROF_SOCKET="$TEST_TMP/sock" LD_PRELOAD="$SHIM" "$T/target_heap" >prog.out &
	prog=$!
	BG_PIDS+=($prog)
	wait_for_line prog.out '^ready'
	kill -USR2 "$prog"
	wait_for_file "out/target_heap.$prog.0001.heap.pb.gz" 1
	kill -USR1 "$prog"
	wait "$prog"
	kill -0 "$COLLECTOR_PID"
	cat collector.err | sed 's/^/# /' >&3
	[ "$(grep -c 'dropping' collector.err)" -eq 10 ]
	grep -q "unknown record type" collector.err
	grep -q "short hello" collector.err
	grep -q "not a memprof client" collector.err
	grep -q "record too long" collector.err
	grep -q "alloc names an unknown stack" collector.err
	grep -q "stack ids out of sequence" collector.err
	grep -q "tally names an unknown stack" collector.err
	[ "$(grep -c "tally frees more than it allocated" collector.err)" -eq 2 ]
	grep -q "tally names no size class" collector.err
}

@test "forks are not held up when every allocation is recorded" {
	# Each fork waits for the writer to send what is queued; it once also
	# waited for the writer to pass the fork gate it had closed (2 s each).
	run timeout 60 "$MEMPROF" run -o out --rate 1 -- bash -c 'for i in $(seq 40); do /bin/true; done; echo ok'
	[ "$status" -eq 0 ]
	[ "$output" = ok ]
}

@test "the collector's socket is private to its user" {
	start_collector
	[ "$(stat -c %a "$TEST_TMP/sock")" = 600 ]
}

@test "LD_PRELOAD alone starts a private collector, which leaves once the program has gone" {
	MEMPROF_RATE=65536 LD_PRELOAD="$SHIM" "$T/target_heap" >prog.out &
	prog=$!
	BG_PIDS+=($prog)
	wait_for_line prog.out '^ready'
	kill -USR2 "$prog"
	f=$(wait_for_file "memprof-out/target_heap.$prog.0001.heap.pb.gz" 1)
	within "$(flat "$f" inuse_space hold_big)" $((48 * 1024 * 1024)) 25
	collector=$(pgrep -f "memprof-collector --private.*$TEST_TMP" || true)
	[ -n "$collector" ]
	kill -USR1 "$prog"
	wait "$prog"
	wait_for_file "memprof-out/target_heap.$prog.0002.heap.pb.gz" 2
	for ((i = 0; i < 500; i++)); do
		kill -0 "$collector" 2>/dev/null || break
		sleep 0.01
	done
	! kill -0 "$collector" 2>/dev/null
}

@test "memprof run follows fork and exec, names each file after its program, and exits with the command's status" {
	run "$MEMPROF" run -o out --all -- sh -c 'python3 -c "print(42)"; echo hello | wc -c; exit 3'
	[ "$status" -eq 3 ]
	[ "${lines[0]}" = 42 ]
	[ "${lines[1]}" = 6 ]
	ls out/sh.*.0001.heap.pb.gz out/python3*.heap.pb.gz out/wc.*.0001.heap.pb.gz
	[ -z "$(ls out | grep -Ev '\.(heap|cpu)\.pb\.gz$')" ]
}

@test "what a program allocates just before it execs is in its profile, whichever exec it calls" {
	# At rate 1 every block is recorded: the profile must hold exactly the
	# 4 MiB, sent before the image was replaced.
	for how in execv execvp execve execl execlp execle fexecve; do
		rm -rf out
		run "$MEMPROF" run -o out --rate 1 -- "$T/target_exec" "$how" /bin/echo hi
		[ "$status" -eq 0 ] || { echo "# $how: status $status: $output" >&3; false; }
		[ "${lines[0]}" = hi ]
		f=$(echo out/target_exec.*.0001.heap.pb.gz)
		held=$(flat "$f" inuse_space hold_before_exec)
		[ "$held" -eq 4194304 ] || { echo "# $how: $held bytes" >&3; false; }
		ls out/echo.*.0001.heap.pb.gz
	done
	# A failed exec returns with errno intact; a vfork child's exec leaves
	# the parent's writer alone.
	rm -rf out
	run -127 "$MEMPROF" run -o out -- "$T/target_exec" execvp no-such-program-here
	[[ $output == *"exec: No such file or directory"* ]]
	run "$MEMPROF" run -o out -- "$T/target_exec" vfork /bin/echo hi
	[ "$status" -eq 0 ]
	[[ $output == *"status 0"* ]]
}

@test "memprof run rejects bad options with a clear message" {
	run "$MEMPROF" run --rate many -- true
	[ "$status" -eq 2 ]
	[ "$output" = "memprof: --rate wants a number of bytes, not 'many'" ]
	run "$MEMPROF" run --cpu-hz 20000 -- true
	[ "$status" -eq 2 ]
	run "$MEMPROF" run
	[ "$status" -eq 2 ]
	[[ $output == *"no command given"* ]]
	run "$MEMPROF" frobnicate
	[ "$status" -eq 2 ]
}

@test "memprof run of a command that does not exist says so, exits 127 and leaves nothing behind" {
	export TMPDIR=$TEST_TMP/tmp
	mkdir "$TMPDIR"
	run -127 "$MEMPROF" run -o out -- memprof-no-such-command --flag
	[ "$output" = "memprof: memprof-no-such-command: command not found" ]
	# The collector's socket and report went with their directory.
	[ -z "$(ls -A "$TMPDIR")" ]
	run -0 "$MEMPROF" run -o out -- sh -c 'exit 0'
	[ -z "$(ls -A "$TMPDIR")" ]
}

@test "kill -USR2 of the collector dumps every process; --interval dumps periodically" {
	start_collector --interval 1
	for i in 1 2; do
		MEMPROF_SOCKET="$TEST_TMP/sock" MEMPROF_RATE=65536 LD_PRELOAD="$SHIM" "$T/target_heap" >prog$i.out &
		BG_PIDS+=($!)
		eval "prog$i=$!"
		wait_for_line prog$i.out '^ready'
	done
	kill -USR2 "$COLLECTOR_PID"
	wait_for_file "out/target_heap.$prog1.0001.heap.pb.gz" 1
	wait_for_file "out/target_heap.$prog2.0001.heap.pb.gz" 1
	wait_for_file "out/target_heap.$prog1.0003.heap.pb.gz" 3
	kill -USR1 "$prog1" "$prog2"
	wait "$prog1" "$prog2"
}

@test "no half-written or temporary files are left in the profile directory" {
	"$MEMPROF" run -o out --interval 1 --all -- sh -c 'sleep 1.5'
	[ -z "$(ls -A out | grep -Ev '^[^.].*\.(heap|cpu)\.pb\.gz$')" ]
}

@test "the shim exports only the functions it wraps" {
	# The allocator (malloc_usable_size too: sampled blocks have a
	# header), pthread_create (each thread's stack, CPU timer and end),
	# sigaction/signal (the program's view of the signals memprof shares),
	# setitimer/timer_create (stepping aside when the program profiles
	# itself), the exec family (sending what is queued before the image
	# goes, and saying which program comes next), posix_spawn/posix_spawnp
	# (saying which program a child runs) and _exit/_Exit (sending what is
	# queued before a process leaves without exit's handlers).
	run sh -c "nm -D --defined-only '$SHIM' | awk '{ print \$3 }' | sort | tr '\n' ' '"
	[ "$output" = "_Exit _exit aligned_alloc calloc dlclose execl execle execlp execv execve execveat execvp execvpe fexecve fork free malloc malloc_usable_size memalign posix_memalign posix_spawn posix_spawnp pthread_create pvalloc realloc reallocarray setitimer sigaction signal timer_create valloc " ]
}

@test "make install puts the library, the collector and memprof under PREFIX" {
	make -C "$ROOT" -s install PREFIX="$TEST_TMP/prefix" >/dev/null
	[ -x "$TEST_TMP/prefix/bin/memprof" ]
	run "$TEST_TMP/prefix/bin/memprof" run -o out -- "$T/target_threads"
	[ "$status" -eq 0 ]
	ls out/target_threads.*.heap.pb.gz
	make -C "$ROOT" -s install PREFIX=/usr DESTDIR="$TEST_TMP/stage" >/dev/null
	[ -f "$TEST_TMP/stage/usr/lib/memprof/libmemprof.so" ]
	grep -q '^MEMPROF_LIBDIR=/usr/lib/memprof$' "$TEST_TMP/stage/usr/bin/memprof"
	# The installed front end knows its version without the tree.
	[ "$("$TEST_TMP/stage/usr/bin/memprof" --version)" = "memprof $(cat "$ROOT/VERSION")" ]
}

# Runs "$@" under the shim, reporting to the collector of start_collector
# (in the same process: env execs it).
profiled() {
	env MEMPROF_SOCKET="$TEST_TMP/sock" LD_PRELOAD="$SHIM" "$@"
}

# USR1: the collector leaves once nobody is connected; then its report is
# complete.
collector_leaves() {
	kill -USR1 "$COLLECTOR_PID"
	wait "$COLLECTOR_PID"
}

@test "a process that becomes a program memprof cannot see is named, with the reason, however it got there" {
	start_collector --report report
	(exec env MEMPROF_SOCKET="$TEST_TMP/sock" LD_PRELOAD="$SHIM" "$T/target_exec" execv "$T/static_hello") >/dev/null &
	execv=$!
	wait "$execv"
	profiled "$T/target_exec" vfork "$T/static_hello" >vfork.out
	profiled "$T/target_exec" spawn "$T/static_hello" >spawn.out
	(cd "$T" && PATH=$T:$PATH profiled ./target_exec spawnp static_hello) >spawnp.out
	(cd "$T" && PATH=$T:$PATH exec env MEMPROF_SOCKET="$TEST_TMP/sock" LD_PRELOAD="$SHIM" ./target_exec execvp static_hello) >/dev/null &
	execvp=$!
	wait "$execvp"
	(exec env MEMPROF_SOCKET="$TEST_TMP/sock" LD_PRELOAD="$SHIM" env -u LD_PRELOAD /bin/true) &
	noenv=$!
	wait "$noenv"
	# Seen, or never run: nothing to say.
	profiled "$T/target_exec" execv /bin/echo hi >/dev/null
	profiled "$T/target_exec" spawn /bin/echo hi >/dev/null
	profiled "$T/target_exec" vfork /bin/echo hi >/dev/null
	profiled "$T/target_exec" execvp no-such-program-here 2>/dev/null || true
	collector_leaves
	cat report | sed 's/^/# /' >&3
	vfork=$(sed -n 's/^vfork child \([0-9]*\): status 0$/\1/p' vfork.out)
	spawn=$(sed -n 's/^spawn child \([0-9]*\): status 0$/\1/p' spawn.out)
	spawnp=$(sed -n 's/^spawnp child \([0-9]*\): status 0$/\1/p' spawnp.out)
	printf 'unchecked %s static %s\n' "$execv" "$T/static_hello" "$vfork" "$T/static_hello" \
		"$spawn" "$T/static_hello" "$spawnp" "$T/static_hello" "$execvp" "$T/static_hello" >expected
	echo "unchecked $noenv no-preload /bin/true" >>expected
	diff <(sort expected) <(grep '^unchecked' report | sort)
}

@test "a malformed exec notice drops its client, and nothing it named is reported" {
	start_collector --report report
	python3 - "$TEST_TMP/sock" <<'PY'
import socket, struct, sys
body = struct.pack("<IIIIQIIQIIII", 0x4f52504d, 5, 4242, 1, 4096, 0, 0, 0, 0, 4, 0, 0) + b"fake"
hello = struct.pack("<II", 1, len(body)) + body
def notice(pid, flags, path, path_len=None):
    n = struct.pack("<IIQII", pid, flags, 1, len(path) if path_len is None else path_len, 0) + path
    return struct.pack("<II", 13, len(n)) + n
for bad in (notice(99, 0, b"/bin/x", 3),          # lengths disagree
            notice(99, 64, b"/bin/x"),            # unknown flag
            notice(0, 0, b"/bin/x"),              # no pid
            notice(99, 0, b"/bin\0x"),            # a NUL in the path
            struct.pack("<II", 13, 4) + b"abcd"): # too short
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(hello + bad)
    s.recv(1)
PY
	collector_leaves
	[ "$(grep -c 'malformed exec notice' collector.err)" -eq 5 ]
	! grep -q '^unchecked' report
}

@test "the collector tells from a program's file why memprof could not see it, and never blocks on one" {
	inspect() { "$COLLECTOR" --inspect "$1"; }
	[ "$(inspect "$T/static_hello")" = static ]
	[ "$(inspect /bin/sh)" = unknown ]
	[ "$(inspect "$TEST_TMP/no-such-file")" = not-found ]
	# A script: its interpreter is what the loader runs.
	printf '#!%s -x\necho\n' "$T/static_hello" >static.sh
	[ "$(inspect static.sh)" = static ]
	printf '#!/bin/sh\necho\n' >dynamic.sh
	[ "$(inspect dynamic.sh)" = unknown ]
	# A 32-bit ELF header; a 64-bit one cut short; a FIFO and a device
	# (not opened: they could block or act).
	printf '\177ELF\001\001\001\000\000\000\000\000\000\000\000\000' >elf32
	[ "$(inspect elf32)" = 32-bit ]
	head -c 40 "$T/static_hello" >elf64-short
	[ "$(inspect elf64-short)" = unknown ]
	mkfifo fifo
	[ "$(timeout 5 "$COLLECTOR" --inspect fifo)" = unknown ]
	[ "$(inspect /dev/zero)" = unknown ]
	# Set-user-id to someone else: the loader ignores LD_PRELOAD.
	if [ "$(id -u)" = 0 ]; then
		cp /bin/true suid-true
		chown nobody suid-true
		chmod 4755 suid-true
		[ "$(inspect suid-true)" = setuid ]
	fi
}

@test "USR1: the collector names who is still connected, and leaves once they have gone" {
	start_collector --report report
	env MEMPROF_SOCKET="$TEST_TMP/sock" LD_PRELOAD="$SHIM" "$T/target_heap" >prog.out &
	prog=$!
	BG_PIDS+=($prog)
	wait_for_line prog.out '^ready'
	kill -USR1 "$COLLECTOR_PID"
	sleep 0.3
	kill -0 "$COLLECTOR_PID"
	grep -qx "running $prog target_heap" report
	kill -USR1 "$prog"
	wait "$prog"
	wait "$COLLECTOR_PID"
	ls out/target_heap.$prog.0001.heap.pb.gz
	! grep -q '^unchecked' report
}

@test "TERM: final profiles at once, and who still ran is reported as not checked" {
	start_collector --report report
	env MEMPROF_SOCKET="$TEST_TMP/sock" LD_PRELOAD="$SHIM" "$T/target_heap" >prog.out &
	prog=$!
	BG_PIDS+=($prog)
	wait_for_line prog.out '^ready'
	kill -TERM "$COLLECTOR_PID"
	wait "$COLLECTOR_PID"
	grep -qx "unchecked $prog running $T/target_heap" report
	ls out/target_heap.$prog.0001.heap.pb.gz
	kill -USR1 "$prog"
	wait "$prog"
}

@test "HUP: the collector lets go of the front end's pipes and removes its directory when it leaves" {
	mkdir own
	"$COLLECTOR" --socket "$TEST_TMP/own/sock" --dir out --report "$TEST_TMP/own/report" \
		--own-dir "$TEST_TMP/own" > >(cat >collector.out) 2>&1 &
	COLLECTOR_PID=$!
	BG_PIDS+=($COLLECTOR_PID)
	wait_for_file "$TEST_TMP/own/sock" 5
	env MEMPROF_SOCKET="$TEST_TMP/own/sock" LD_PRELOAD="$SHIM" "$T/target_heap" >prog.out &
	prog=$!
	BG_PIDS+=($prog)
	wait_for_line prog.out '^ready'
	kill -HUP "$COLLECTOR_PID"
	kill -USR1 "$COLLECTOR_PID"
	# Our pipe is closed: its reader sees the end while the collector runs.
	sleep 0.3
	kill -0 "$COLLECTOR_PID"
	[ "$(ls -l /proc/$COLLECTOR_PID/fd | grep -c pipe)" -eq 0 ]
	kill -USR1 "$prog"
	wait "$prog" "$COLLECTOR_PID"
	[ ! -e own ]
	ls out/target_heap.$prog.0001.heap.pb.gz
}

@test "--make-own-dir and --ready-fd: the collector says where it listens once it does, and its pipe ends when it has left" {
	exec {ready}< <(exec "$COLLECTOR" --make-own-dir "$TEST_TMP" --ready-fd 3 --dir out 3>&1 2>collector.err)
	COLLECTOR_PID=$!
	BG_PIDS+=($COLLECTOR_PID)
	IFS= read -r -t 10 -u "$ready" own
	[[ $own == "$TEST_TMP"/memprof.?????? ]]
	[ "$(stat -c %a "$own")" = 700 ]
	[ -S "$own/sock" ]
	env MEMPROF_SOCKET="$own/sock" LD_PRELOAD="$SHIM" "$T/target_heap" >prog.out &
	prog=$!
	BG_PIDS+=($prog)
	wait_for_line prog.out '^ready'
	wait_for_line "$own/report" "^process $prog target_heap\$"
	kill -USR1 "$prog"
	wait "$prog"
	kill -USR1 "$COLLECTOR_PID"
	# The end of the pipe (1), not a timeout (> 128): it has left, and
	# taken its directory with it.
	rc=0
	read -r -t 10 -u "$ready" _ || rc=$?
	[ "$rc" = 1 ]
	[ ! -e "$own" ]
	ls out/target_heap.$prog.0001.heap.pb.gz
}
