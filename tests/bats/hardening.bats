#!/usr/bin/env bats
# The collector against hostile or careless clients and users (issue 12):
# each test reproduces one defect found by probing it, and checks it is gone.
# Longer variants of the same probes are in tests/stress/.

bats_require_minimum_version 1.5.0
load test_helper

# The HTTP status of URL, given at most SECONDS (default 5) to answer.
status_of() {
	curl -s -o /dev/null --max-time "${2:-5}" -w '%{http_code}' "$1" || true
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

@test "a FIFO or /dev/zero as suppressions is refused at once, and the collector serves on" {
	start_http_collector
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

@test "a socket directory of another user, or open to others, is refused with its name" {
	unset XDG_RUNTIME_DIR
	export TMPDIR=$TEST_TMP
	dir=$TEST_TMP/memprof-$(id -u)
	mkdir -m 0777 "$dir"
	chmod 0777 "$dir"
	run -1 timeout 10 "$COLLECTOR" --dir out
	[ "$output" = "memprof-collector: refusing the socket directory $dir: mode 0777, not 0700; remove it, chmod 700 it or give --socket" ]
	if [ "$(id -u)" = 0 ]; then
		chown 65534 "$dir"
		run -1 timeout 10 "$COLLECTOR" --dir out
		[ "$output" = "memprof-collector: refusing the socket directory $dir: it belongs to uid 65534, not to you (uid 0); remove it or give --socket" ]
	fi
	[ ! -e "$dir/sock" ]
	# Made by the collector: 0700, whatever the umask.
	rmdir "$dir"
	(umask 0; exec "$COLLECTOR" --dir out) 2>collector.err &
	BG_PIDS+=($!)
	wait_for_file "$dir/sock" 5
	[ "$(stat -c %a "$dir")" = 700 ]
}

@test "the shim sends nothing to a collector run by another user" {
	[ "$(id -u)" = 0 ] || skip "needs root to run a collector as another user"
	chmod 0711 "$TEST_TMP"
	mkdir -m 0777 pub
	chmod 0777 pub
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$COLLECTOR" --socket "$TEST_TMP/pub/sock" --dir "$TEST_TMP/pub/out" --verbose 2>collector.err &
	BG_PIDS+=($!)
	wait_for_file "$TEST_TMP/pub/sock" 5
	expected=$("$T/target_threads")
	run env MEMPROF_SOCKET="$TEST_TMP/pub/sock" LD_PRELOAD="$SHIM" "$T/target_threads"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "memprof: the collector at $TEST_TMP/pub/sock runs as uid 65534, not as you (uid 0); nothing is sent to it" ]
	[ "${lines[1]}" = "memprof: cannot reach the collector at $TEST_TMP/pub/sock (Permission denied); profiling is off" ]
	[ "${lines[2]}" = "$expected" ]
	sleep 0.2
	! grep -q "connected" collector.err
}

@test "a client is known by the pid the kernel gives, not the one it claims" {
	start_http_collector
	run -0 "$T/probe_client" "$TEST_TMP/sock" pid 1
	pid=${lines[0]}
	wait_for_file "out/probe.$pid.0001.heap.pb.gz" 5
	[ ! -e out/probe.1.0001.heap.pb.gz ]
}

@test "profiles are 0600 in a directory made 0700; --mode and MEMPROF_MODE open them up" {
	umask 0000
	run -0 "$MEMPROF" run --rate 1 -o made -- "$T/target_threads" >/dev/null
	[ "$(stat -c %a made)" = 700 ]
	ls made/*.heap.pb.gz >/dev/null
	for f in made/*; do [ "$(stat -c %a "$f")" = 600 ]; done
	# An existing directory is used as it is.
	mkdir -m 0751 kept
	run -0 "$MEMPROF" run --rate 1 --mode 0644 -o kept -- "$T/target_threads" >/dev/null
	[ "$(stat -c %a kept)" = 751 ]
	for f in kept/*; do [ "$(stat -c %a "$f")" = 644 ]; done
	# A private collector started by the shim.
	MEMPROF_RATE=1 MEMPROF_MODE=0640 MEMPROF_DIR=bare LD_PRELOAD="$SHIM" "$T/target_threads" >/dev/null
	wait_for_file "bare/*.heap.pb.gz" 5
	sleep 0.3
	[ "$(stat -c %a bare)" = 750 ]
	for f in bare/*; do [ "$(stat -c %a "$f")" = 640 ]; done
	run -2 "$MEMPROF" run --mode 0755 -o x -- true
	[ "$output" = "memprof: --mode wants a file mode with rw for you and no x bits (0600, 0640, 0644), not '0755'" ]
}

@test "a client that does not read its leak report of 20,000 leaks stalls nobody" {
	start_http_collector
	"$T/probe_client" "$TEST_TMP/sock" leaks 20000 >probe.out &
	BG_PIDS+=($!)
	wait_for_line probe.out '^sent'
	pid=$(head -1 probe.out)
	# The leak profile is written once the report is on its way: with a
	# blocking send it came only after the collector gave up waiting.
	wait_for_file "out/probe.$pid.0001.leak.pb.gz" 5
	for path in "" "cmdline?pid=$pid"; do
		t=$(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}' "$URL/$path")
		echo "# /debug/pprof/$path: $t" >&3
		[ "${t% *}" = 200 ]
		awk -v t="${t#* }" 'BEGIN { exit !(t < 0.1) }'
	done
	# A well-behaved leak check meanwhile gets its report.
	run -23 timeout 10 env MEMPROF_SOCKET="$TEST_TMP/sock" MEMPROF_LEAK_CHECK=1 \
		LD_PRELOAD="$SHIM" "$T/target_leaks"
	[[ $output == *"SUMMARY: memprof: 103200 byte(s) leaked in 150 allocation(s)."* ]]
}

# CPU time (user + system, clock ticks) of process PID so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

@test "out of descriptors, the collector backs off quietly and serves again afterwards" {
	(ulimit -n 64 && exec "$COLLECTOR" --socket "$TEST_TMP/sock" --dir out) 2>collector.err &
	cpid=$!
	BG_PIDS+=($cpid)
	wait_for_file "$TEST_TMP/sock" 5
	"$T/probe_client" "$TEST_TMP/sock" hold 100 >probe.out &
	probe=$!
	BG_PIDS+=($probe)
	wait_for_line probe.out '^sent'
	t0=$(cpu_ticks "$cpid")
	sleep 3
	ticks=$(($(cpu_ticks "$cpid") - t0))
	said=$(grep -c 'accept: Too many open files' collector.err || true)
	echo "# 3 s out of descriptors: $ticks ticks of CPU, $said messages" >&3
	[ "$said" -ge 1 ]
	[ "$said" -le 5 ]
	# Under 5% of one CPU.
	[ "$ticks" -lt $(($(getconf CLK_TCK) * 3 * 5 / 100)) ]
	kill "$probe"
	MEMPROF_SOCKET="$TEST_TMP/sock" MEMPROF_RATE=1 LD_PRELOAD="$SHIM" "$T/target_threads" >/dev/null
	wait_for_file "out/target_threads.*.heap.pb.gz" 5
}

@test "64 hour-long CPU profile requests leave the index and heap pages answering" {
	start_http_collector
	MEMPROF_SOCKET="$TEST_TMP/sock" LD_PRELOAD="$SHIM" "$T/target_cpu" sleep 60 >/dev/null &
	pid=$!
	BG_PIDS+=($pid)
	for ((i = 0; i < 500; i++)); do
		[ "$(status_of "$URL/cmdline?pid=$pid")" = 200 ] && break
		sleep 0.01
	done
	for ((i = 0; i < 64; i++)); do
		curl -s -o "long.$i" --max-time 30 -w '%{http_code}\n' \
			"$URL/profile?pid=$pid&seconds=3600" >"code.$i" &
		BG_PIDS+=($!)
	done
	# The refused ones are answered at once.
	for ((i = 0; i < 500; i++)); do
		[ "$(cat code.* | grep -c 503)" -ge 60 ] && break
		sleep 0.01
	done
	[ "$(cat code.* | grep -c 503)" -eq 60 ]
	grep -h 'CPU profiles are being taken for 127.0.0.1 already (at most 4 per client)' long.* | head -1
	[ "$(status_of "$URL/")" = 200 ]
	[ "$(status_of "$URL/heap?pid=$pid")" = 200 ]
	[ "$(status_of "$URL/heap?pid=$pid&debug=1")" = 200 ]
	[ "$(status_of "$URL/allocs?pid=$pid")" = 200 ]
	# Other addresses (all of 127/8 is loopback) up to the limit in all.
	for a in 2 3 4; do
		for ((i = 0; i < 4; i++)); do
			curl -s -o /dev/null --interface 127.0.0.$a --max-time 30 \
				"$URL/profile?pid=$pid&seconds=3600" &
			BG_PIDS+=($!)
		done
	done
	sleep 0.5
	run curl -s --interface 127.0.0.5 --max-time 5 -w '\n%{http_code}' "$URL/profile?pid=$pid&seconds=1"
	[ "${lines[0]}" = "16 CPU profiles are being taken already (at most 16 in all); try again when one has ended" ]
	[ "${lines[1]}" = 503 ]
	[ "$(status_of "$URL/")" = 200 ]
}

@test "a client's stacks and samples are bounded, the excess counted, and its memory returned when it leaves" {
	start_http_collector
	base=$(rss_kib "$COLLECTOR_PID")
	# More stacks than PROC_MAX_STACKS (200,000), one live sample each.
	start_stack_probe 250000
	for ((i = 0; i < 1000; i++)); do
		curl -s "$URL/" >index.html
		grep -q "50000 stacks and 50000 samples over the limits" index.html && break
		sleep 0.01
	done
	grep "<tr><td>$pid</td>" index.html | grep -q "50000 stacks and 50000 samples over the limits"
	curl -s -o heap.pb.gz "$URL/heap?pid=$pid"
	pprof -comments heap.pb.gz >comments
	grep -q "^50000 stacks and 50000 samples not kept: the process passed the collector's limits (200000 stacks, 1000000 locations, 1000000 buckets, 4000000 live samples per process)" comments
	[ "$(pprof -raw heap.pb.gz | awk '/^Samples/ { s = 1; next } /^Locations/ { s = 0 } s && /^ *[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+:/' | wc -l)" -eq 200000 ]
	held=$(rss_kib "$COLLECTOR_PID")
	# The client leaves: what it took is given back.
	end_stack_probe 10 0.5
	after=$(rss_kib "$COLLECTOR_PID")
	echo "# collector RSS: $base KiB at start, $held KiB holding the client, $after KiB after" >&3
	[ $((after - base)) -lt $(((held - base) / 4)) ]
}

@test "a FIFO or a device named as a client's binary is not opened for symbols or unwinding" {
	start_http_collector
	mkfifo "$TEST_TMP/fifo"
	for file in "$TEST_TMP/fifo" /dev/zero; do
		run -0 timeout 10 "$T/probe_client" "$TEST_TMP/sock" file "$file"
		pid=${lines[0]}
		wait_for_file "out/probe.$pid.0001.cpu.pb.gz" 2
		[ "$(status_of "$URL/" 1)" = 200 ]
	done
}
