#!/usr/bin/env bats
# Go's /debug/pprof/ endpoints, served by the collector (--http), read with
# go tool pprof and curl.

load test_helper

# A program reporting to a start_http_collector, in the background; sets PID once
# the collector lists it. PRELOAD_FIRST: a library preloaded before the
# shim.
start_target() {
	MEMPROF_SOCKET="$TEST_TMP/sock" LD_PRELOAD="${PRELOAD_FIRST:+$PRELOAD_FIRST }$SHIM" "$@" \
		>prog.out 2>prog.err &
	PID=$!
	BG_PIDS+=($PID)
	disown
	for ((i = 0; i < 500; i++)); do
		curl -s "$URL/" | grep -q "<tr><td>$PID</td>" && return 0
		sleep 0.01
	done
	return 1
}

# target_heap's 48 MiB in hold_big and 16 MiB in hold_small, with a fixed
# seed (see heap.bats). A USR2 dump makes the shim send everything it has
# taken, so what the endpoints serve afterwards is complete.
start_target_heap() {
	MEMPROF_SEED=42 MEMPROF_RATE=65536 start_target "$T/target_heap"
	wait_for_line prog.out '^ready'
	kill -USR2 "$PID"
	wait_for_file "out/target_heap.$PID.0001.heap.pb.gz" 2 >/dev/null
}

# go tool pprof -proto URL > FILE, with its ~/pprof copy kept in the test.
fetch() {
	local out=$1
	shift
	HOME=$TEST_TMP go tool pprof -proto "$@" >"$out" 2>fetch.err || {
		sed 's/^/# /' fetch.err >&3
		return 1
	}
}

# curl printing the body and then the status code on a line of its own
# (bats's lines then hold the body's lines and, last, the status).
get() {
	curl -sS --max-time 20 -w '\n%{http_code}\n' "$@"
}

# /proc/PID/stat user + system time in nanoseconds.
cpu_ns() {
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f\n", ($14 + $15) * 1000000000 / hz }' "/proc/$1/stat"
}

@test "go tool pprof fetches /heap and /allocs: a function holding 48 MiB is shown within 15%" {
	start_http_collector
	start_target_heap
	fetch heap.pb.gz "$URL/heap?pid=$PID"
	within "$(flat heap.pb.gz inuse_space hold_big)" $((48 * 1024 * 1024)) 15
	within "$(flat heap.pb.gz inuse_space hold_small)" $((16 * 1024 * 1024)) 15
	# The same figures as the dump written from the same state.
	[ "$(flat heap.pb.gz inuse_space hold_big)" = \
		"$(flat "out/target_heap.$PID.0001.heap.pb.gz" inuse_space hold_big)" ]
	run pprof -raw heap.pb.gz
	[[ $output == *"inuse_space/bytes[dflt]"* ]]
	all_locations_named heap.pb.gz
	# allocs: the same data, allocated space first.
	fetch allocs.pb.gz "$URL/allocs?pid=$PID"
	run pprof -raw allocs.pb.gz
	[[ $output == *"alloc_space/bytes[dflt]"* ]]
	within "$(flat allocs.pb.gz alloc_space churn)" $((256 * 1024 * 1024)) 15
	# With one process, pid may be left out.
	fetch alone.pb.gz "$URL/heap"
	within "$(flat alone.pb.gz inuse_space hold_big)" $((48 * 1024 * 1024)) 15
}

@test "profiles come with Go's headers; HEAD gets the headers alone" {
	start_http_collector
	start_target_heap
	run curl -sS -D headers -o body "$URL/heap?pid=$PID"
	[ "$status" -eq 0 ]
	grep -q '^HTTP/1.1 200 OK' headers
	grep -q '^Content-Type: application/octet-stream' headers
	grep -q '^Content-Disposition: attachment; filename="heap"' headers
	gzip -t body
	length=$(awk 'tolower($1) == "content-length:" { print $2 + 0 }' headers)
	[ "$length" -eq "$(stat -c %s body)" ]
	run curl -sSI "$URL/heap?pid=$PID"
	[[ $output == *"Content-Length: "* ]]
	run curl -sS -I -o /dev/null -w '%{size_download}' "$URL/heap?pid=$PID"
	[ "$output" -eq 0 ]
	run curl -sS -D - -o /dev/null "$URL/heap?pid=$PID&debug=1"
	[[ $output == *"Content-Type: text/plain; charset=utf-8"* ]]
	[[ $output != *"Content-Disposition"* ]]
	run curl -sS -D - -o /dev/null "$URL/"
	[[ $output == *"Content-Type: text/html; charset=utf-8"* ]]
	run curl -sS -D - -o /dev/null "$URL/cmdline?pid=$PID"
	[[ $output == *"Content-Type: text/plain; charset=utf-8"* ]]
	# Go's address without the slash is redirected.
	run curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "$URL"
	[ "$output" = "301 $URL/" ]
}

# mallinfo2 walks every free chunk of the heap (60 ms at the exit of a
# std::map churn with 424,000 chunks in its fastbins): the shim reads it
# for the page that shows it and for nothing else. A stand-in preloaded
# before the shim counts the calls.
@test "malloc's statistics are read for the ?debug=1 page only: not for a dump, not at exit" {
	start_http_collector
	# The writer thread reads them while the page waits, however idle the
	# program (for the shared ring, see the next test).
	MEMPROF_WRITER=thread PRELOAD_FIRST=$T/libmallinfo_count.so \
		MALLINFO_COUNT_LOG=$TEST_TMP/mallinfo.log MEMPROF_RATE=65536 start_target "$T/target_heap"
	wait_for_line prog.out '^ready'
	kill -USR2 "$PID"
	wait_for_file "out/target_heap.$PID.0001.heap.pb.gz" 2 >/dev/null
	[ ! -e "$TEST_TMP/mallinfo.log" ]
	curl -sS "$URL/heap?debug=1&pid=$PID" >heap.txt
	grep -Eq '^# MallocFree = [0-9]+$' heap.txt
	[ "$(wc -l <"$TEST_TMP/mallinfo.log")" -eq 1 ]
	# USR1: the program frees everything (its fastbins fill) and exits;
	# its final profile comes after the shim's last word.
	kill -USR1 "$PID"
	wait_for_file "out/target_heap.$PID.0002.heap.pb.gz" 2 >/dev/null
	[ "$(wc -l <"$TEST_TMP/mallinfo.log")" -eq 1 ]
}

# Without a writer thread only the program's threads can read them, at a
# sampled allocation or free (where no malloc lock is held): an idle
# program's page says when they come, and they come once.
@test "with the shared ring, malloc's statistics come at the program's next sample after the page asks, once" {
	start_http_collector
	PRELOAD_FIRST=$T/libmallinfo_count.so MALLINFO_COUNT_LOG=$TEST_TMP/mallinfo.log \
		MEMPROF_RATE=65536 start_target "$T/target_heap"
	wait_for_line prog.out '^ready'
	kill -USR2 "$PID"
	wait_for_file "out/target_heap.$PID.0001.heap.pb.gz" 2 >/dev/null
	curl -sS "$URL/heap?debug=1&pid=$PID" >heap.txt
	grep -q '^# Malloc statistics: none yet (the program reads them at its next sampled allocation' heap.txt
	[ ! -e "$TEST_TMP/mallinfo.log" ]
	# USR1: the program frees its sampled blocks (each a sample), and
	# exits; the first of them answers the page's question.
	kill -USR1 "$PID"
	wait_for_file "out/target_heap.$PID.0002.heap.pb.gz" 2 >/dev/null
	[ "$(wc -l <"$TEST_TMP/mallinfo.log")" -eq 1 ]
}

@test "heap?debug=1 is Go's legacy text with a memory summary, and go tool pprof reads it" {
	start_http_collector
	# Idle, the program answers for malloc's statistics only with a
	# writer thread (see above).
	MEMPROF_WRITER=thread start_target_heap
	curl -sS "$URL/heap?debug=1&pid=$PID" >heap.txt
	head -1 heap.txt | sed 's/^/# /' >&3
	# Twice the rate, as Go writes it.
	head -1 heap.txt | grep -Eq '^heap profile: [0-9]+: [0-9]+ \[[0-9]+: [0-9]+\] @ heap/131072$'
	grep -Eq '^[0-9]+: [0-9]+ \[[0-9]+: [0-9]+\] @( 0x[0-9a-f]+)+$' heap.txt
	# Go's frame lines: pc, function+offset from its start, file:line.
	grep -Eq $'^#\t0x[0-9a-f]+\thold_big\\+0x[0-9a-f]+\t+.*tests/c/target_heap.c:[0-9]+$' heap.txt
	# The offset is the pc's from the symbol's start in the file.
	line=$(grep -m1 -P '^#\t0x[0-9a-f]+\thold_big\+' heap.txt)
	pc=$(echo "$line" | cut -f2)
	off=$(echo "$line" | cut -f3 | sed 's/.*+//')
	start=$(nm "$T/target_heap" | awk '$3 == "hold_big" { print $1 }')
	base=$(awk -v f="$T/target_heap" '$2 ~ /x/ && $6 == f { split($1, r, "-"); print r[1]; exit }' /proc/"$PID"/maps)
	off_file=$(awk -v f="$T/target_heap" '$2 ~ /x/ && $6 == f { print $3; exit }' /proc/"$PID"/maps)
	[ $((pc - 0x$base + 0x$off_file - 0x$start)) -eq $((off)) ]
	# Go's runtime.MemStats block, with glibc's figures.
	grep -q '^# runtime.MemStats$' heap.txt
	for stat in Alloc Sys HeapAlloc HeapSys HeapIdle HeapInuse MallocFree MallocTopPad MallocArenas \
		MallocMmapped RSS MaxRSS HeapSamples SampleRate DroppedEvents DroppedCPUSamples; do
		grep -Eq "^# $stat = [0-9]+$" heap.txt
	done
	grep -q '^# SampleRate = 65536$' heap.txt
	grep -q '^# DroppedEvents = 0$' heap.txt
	# pprof unsamples the text itself and finds the binaries through the
	# memory map at the end: the same figures as the profile.proto.
	fetch heap.pb.gz "$URL/heap?pid=$PID"
	text=$(flat heap.txt inuse_space hold_big)
	within "$text" $((48 * 1024 * 1024)) 15
	within "$text" "$(flat heap.pb.gz inuse_space hold_big)" 1
	within "$(flat heap.txt alloc_space churn)" "$(flat heap.pb.gz alloc_space churn)" 1
	# go tool pprof -top of the text names what the binary profile names.
	# pprof reads the frame lines as comments and names addresses from the
	# DWARF of the files in the memory map; _start has none (crt1.o is
	# built without it), so pprof shows it as [target_heap], left out here.
	top_names() { pprof -top -nodecount=10 "$1" | awk '/^ *flat / { t = 1; next } t { print $6 }' | grep -v '^\[' | sort; }
	top_names heap.txt | sed 's/^/# text: /' >&3
	[ -n "$(top_names heap.txt)" ]
	[ -z "$(comm -23 <(top_names heap.txt) <(top_names heap.pb.gz))" ]
	for fn in hold_big hold_small main; do
		top_names heap.txt | grep -qx "$fn"
	done
	# allocs?debug=1 is the same text.
	curl -sS "$URL/allocs?debug=1&pid=$PID" | head -1 | grep -q '^heap profile: '
}

@test "go tool pprof -top of a saved heap?debug=1 names the top 10 as the binary profile does, glibc's internal functions too" {
	libc=$(ldd "$T/target_libc" | awk '/libc\.so/ { print $3 }')
	id=$(readelf -n "$libc" | awk '/Build ID/ { print $3 }')
	[ -e "/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug" ] ||
		skip "libc6-dbg is not installed (make deps installs it)"
	start_http_collector
	# A fixed seed: with a random one, about 1 run in 20 also sampled the
	# main thread's start (pthread_create's calloc, under _start, which
	# only the binary profile names), and the two top 10s differed.
	MEMPROF_SEED=42 MEMPROF_RATE=4096 start_target "$T/target_libc"
	wait_for_line prog.out '^ready'
	# Everything the shim took is sent with the dump; the program then
	# waits, so the text and the binary profile are of the same moment.
	kill -USR2 "$PID"
	wait_for_file "out/target_libc.$PID.0001.heap.pb.gz" 5 >/dev/null
	curl -sS "$URL/heap?debug=1&pid=$PID" >heap.txt
	curl -sS -o heap.pb.gz "$URL/heap?pid=$PID"
	top_names() { pprof -top -nodecount=10 "$1" | awk '/^ *flat / { t = 1; next } t { print $6 }' | sort; }
	top_names heap.txt | sed 's/^/# text:   /' >&3
	top_names heap.pb.gz | sed 's/^/# binary: /' >&3
	[ "$(top_names heap.txt)" = "$(top_names heap.pb.gz)" ]
	# glibc's own functions, named from libc6-dbg's file: the program's
	# FILEs and strings are malloc'd there, on a thread glibc started.
	for fn in __fopen_internal __vasprintf_internal start_thread __clone3 open_files format_names; do
		top_names heap.txt | grep -qx "$fn"
	done
}

@test "go tool pprof -seconds 2 gets a CPU profile of the next two seconds, whatever dumps happen meanwhile" {
	start_http_collector
	start_target "$T/target_cpu" split 30
	fetch cpu.pb.gz -seconds 2 "$URL/profile?pid=$PID"
	run pprof -raw cpu.pb.gz
	[[ $output == *"samples/count cpu/nanoseconds[dflt]"* ]]
	[[ $output == *"Duration: 2s"* ]]
	[ "$(total cpu cpu.pb.gz)" -gt 0 ]
	all_locations_named cpu.pb.gz

	# How much: curl starts at once, so the CPU the process spends while it
	# runs is what the profile should show, give or take a few ticks.
	before=$(cpu_ns "$PID")
	curl -sS --max-time 10 -o cpu2.pb.gz "$URL/profile?pid=$PID&seconds=2" &
	fetcher=$!
	# A dump starts a new window for the files; the HTTP profile goes on.
	sleep 1
	kill -USR2 "$PID"
	wait "$fetcher"
	spent=$(($(cpu_ns "$PID") - before))
	wait_for_file "out/target_cpu.$PID.0001.cpu.pb.gz" 1
	got=$(total cpu cpu2.pb.gz)
	echo "# $got ns in the profile, $spent ns spent while fetching" >&3
	[ "$got" -ge $((spent * 75 / 100)) ]
	[ "$got" -le $((spent * 110 / 100)) ]
	# The threads spin in burn_a, then in burn_b, each for a second or so.
	[ "$(cum cpu2.pb.gz cpu spin)" -ge $((got * 9 / 10)) ]
}

@test "a process that exits during its CPU profile is answered at once with what was collected" {
	start_http_collector
	start_target "$T/target_cpu" split 2
	# A client that gives up does not disturb anything.
	run curl -sS --max-time 0.3 "$URL/profile?pid=$PID&seconds=20"
	[ "$status" -ne 0 ]
	start=$(date +%s)
	run curl -sS --max-time 15 -o cpu.pb.gz -w '%{http_code}' "$URL/profile?pid=$PID&seconds=20"
	[ "$output" = 200 ]
	[ $(($(date +%s) - start)) -lt 15 ]
	[ "$(cum cpu.pb.gz cpu burn_a)" -gt 0 ]
	kill -0 "$COLLECTOR_PID"
}

@test "/debug/pprof/symbol speaks Go's protocol: curl -d 0xADDR names the function" {
	start_http_collector
	start_target_heap
	curl -sS "$URL/heap?debug=1&pid=$PID" >heap.txt
	pc=$(grep -m1 -P '^#\t0x[0-9a-f]+\thold_big\+' heap.txt | cut -f2)
	run curl -sS "$URL/symbol"
	[ "$output" = "num_symbols: 1" ]
	run curl -sS -d "$pc" "$URL/symbol"
	[ "$output" = "num_symbols: 1
$pc hold_big" ]
	# Several, '+'-separated; an address nothing names gets no line; the
	# query of a GET works as a body does.
	run curl -sS -d "$pc+0x10+$pc" "$URL/symbol?pid=$PID"
	[ "$output" = "num_symbols: 1
$pc hold_big
$pc hold_big" ]
	run curl -sS "$URL/symbol?$pc"
	[ "${lines[1]}" = "$pc hold_big" ]
	run curl -sS -o /dev/null -w '%{http_code}' -d x "$URL/heap"
	[ "$output" = 405 ]
}

@test "the index lists every process with its links; cmdline gives its command line" {
	start_http_collector
	start_target_heap
	heap_pid=$PID
	start_target "$T/target_cpu" split 30
	run get "$URL/"
	[ "${lines[-1]}" = 200 ]
	[[ $output == *"<title>/debug/pprof/</title>"* ]]
	[[ $output == *"<tr><td>$heap_pid</td><td>$T/target_heap</td>"* ]]
	[[ $output == *"<tr><td>$PID</td><td>$T/target_cpu split 30</td>"* ]]
	[[ $output == *"<a href='heap?pid=$heap_pid'>heap</a>"* ]]
	[[ $output == *"<a href='profile?pid=$PID'>profile</a>"* ]]
	run get "$URL/cmdline?pid=$PID"
	[ "${lines[0]}" = "$T/target_cpu split 30" ]
	[ "${lines[1]}" = 200 ]
}

@test "unknown pids get 404, bad parameters 400, with the reason" {
	start_http_collector
	run get "$URL/heap"
	[ "${lines[0]}" = "no process is being profiled; see /debug/pprof/" ]
	[ "${lines[1]}" = 404 ]
	start_target_heap
	run get "$URL/heap?pid=999999999"
	[ "${lines[0]}" = "no process with pid 999999999; see /debug/pprof/ for the list" ]
	[ "${lines[1]}" = 404 ]
	run get "$URL/heap?pid=12ab"
	[ "${lines[0]}" = "pid wants a process id, not '12ab'" ]
	[ "${lines[1]}" = 400 ]
	run get "$URL/profile?pid=$PID&seconds=0"
	[ "${lines[0]}" = "seconds wants a number from 1 to 3600, not '0'" ]
	[ "${lines[1]}" = 400 ]
	run get "$URL/profile?pid=$PID&seconds=3601"
	[ "${lines[1]}" = 400 ]
	run get "$URL/heap?pid=$PID&debug=x"
	[ "${lines[0]}" = "debug wants 0 (profile.proto) or 1 (text), not 'x'" ]
	[ "${lines[1]}" = 400 ]
	run get "$URL/heap?pid=$PID&seconds=5"
	[[ ${lines[0]} == "seconds is for /debug/pprof/profile"* ]]
	[ "${lines[1]}" = 400 ]
	run get "$URL/heap?pid=%zz"
	[ "${lines[0]}" = "malformed query string" ]
	[ "${lines[1]}" = 400 ]
	run get "$URL/goroutine"
	[ "${lines[-1]}" = 404 ]
	run get "http://127.0.0.1:$PORT/"
	[ "${lines[-1]}" = 404 ]
	# go tool pprof shows the server's reason.
	run env HOME="$TEST_TMP" go tool pprof -proto "$URL/heap?pid=999999999"
	[ "$status" -ne 0 ]
	[[ $output == *"404 Not Found - no process with pid 999999999"* ]]
	# Several processes: the pid is needed, and the message lists them.
	heap_pid=$PID
	start_target "$T/target_cpu" split 30
	run get "$URL/heap"
	[[ ${lines[0]} == "pid is required: 2 processes are profiled (pids "* ]]
	[[ ${lines[0]} == *"$heap_pid"* ]]
	[[ ${lines[0]} == *"$PID"* ]]
	[ "${lines[-1]}" = 400 ]
}

@test "only GET and HEAD are served; oversized, malformed and HTTP/2 requests are refused" {
	start_http_collector
	run curl -sS -X POST -D - "$URL/"
	[[ $output == "HTTP/1.1 405 Method Not Allowed"* ]]
	[[ $output == *"Allow: GET, HEAD"* ]]
	run python3 - "$PORT" <<'EOF'
import socket, sys
def ask(data):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.sendall(data)
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    print(reply.split(b"\r\n")[0].decode())
ask(b"GET /debug/pprof/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
ask(b"GET /debug/pprof/ HTTP/2.0\r\n\r\n")
ask(b"GET  /debug/pprof/ HTTP/1.1\r\n\r\n")
ask(b"GET /debug/pprof/ HTTP/1.1\r\nno colon here\r\n\r\n")
ask(b"DELETE /debug/pprof/ HTTP/1.1\r\n\r\n")
ask(b"GET /debug/pprof/ HTTP/1.0\n\n")
EOF
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "HTTP/1.1 431 Request Header Fields Too Large" ]
	[ "${lines[1]}" = "HTTP/1.1 505 HTTP Version Not Supported" ]
	[ "${lines[2]}" = "HTTP/1.1 400 Bad Request" ]
	[ "${lines[3]}" = "HTTP/1.1 400 Bad Request" ]
	[ "${lines[4]}" = "HTTP/1.1 405 Method Not Allowed" ]
	[ "${lines[5]}" = "HTTP/1.1 200 OK" ]
	kill -0 "$COLLECTOR_PID"
}

@test "200 connections that never finish a request delay neither USR2 dumps nor other clients" {
	start_http_collector
	start_target_heap
	python3 - "$PORT" >flood.out <<'EOF' &
import socket, sys, time
held = []
for i in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        s.sendall(b"GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        held.append(s)
    except OSError:
        pass
print("opened", len(held), flush=True)
time.sleep(60)
EOF
	BG_PIDS+=($!)
	disown
	wait_for_line flood.out '^opened'
	cat flood.out | sed 's/^/# /' >&3
	kill -USR2 "$PID"
	wait_for_file "out/target_heap.$PID.0002.heap.pb.gz" 1
	# Idle connections give way to a client with a request.
	run curl -sS --max-time 5 -o heap.pb.gz -w '%{http_code}' "$URL/heap?pid=$PID"
	[ "$output" = 200 ]
	within "$(flat heap.pb.gz inuse_space hold_big)" $((48 * 1024 * 1024)) 15
	# The collector keeps at most 64 of them.
	n=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
	echo "# $n connections open on the server side" >&3
	[ "$n" -le 64 ]
}

@test "a client that does not finish its request within 10 s is told 408 and dropped" {
	start_http_collector
	run python3 - "$PORT" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
s.sendall(b"GET /debug/pprof/ HTTP/1.1\r\n")
start = time.monotonic()
reply = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    reply += chunk
print(reply.split(b"\r\n")[0].decode())
print(round(time.monotonic() - start))
EOF
	[ "${lines[0]}" = "HTTP/1.1 408 Request Timeout" ]
	[ "${lines[1]}" -ge 9 ] && [ "${lines[1]}" -le 12 ]
}

@test "memprof run --http serves the running command; bad addresses are refused at startup" {
	"$MEMPROF" run -o out --rate 65536 --http 127.0.0.1:0 -- "$T/target_heap" >prog.out 2>run.err &
	BG_PIDS+=($!)
	run_pid=$!
	wait_for_line prog.out '^ready'
	PID=$(awk '/^ready/ { print $2 }' prog.out)
	PORT=$(sed -n 's/.*http: listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' run.err)
	fetch heap.pb.gz "http://127.0.0.1:$PORT/debug/pprof/heap"
	within "$(flat heap.pb.gz inuse_space hold_big)" $((48 * 1024 * 1024)) 25
	run get "http://127.0.0.1:$PORT/debug/pprof/"
	[[ $output == *"<tr><td>$PID</td>"* ]]
	kill -USR1 "$PID"
	wait "$run_pid"

	run "$MEMPROF" run --http nowhere:80 -- true
	[ "$status" -eq 2 ]
	[ "$output" = "memprof: --http wants [ADDR:]PORT (ADDR an IP address or localhost), not 'nowhere:80'" ]
	run "$COLLECTOR" --socket "$TEST_TMP/s2" --http 10.0.0.256:80
	[ "$status" -eq 2 ]
	[ "$output" = "memprof-collector: --http wants [ADDR:]PORT, not '10.0.0.256:80': the address must be an IP address or localhost" ]
	run "$COLLECTOR" --socket "$TEST_TMP/s2" --http :70000
	[ "$status" -eq 2 ]
	[ "$output" = "memprof-collector: --http wants [ADDR:]PORT, not ':70000': the port must be a number from 0 to 65535" ]
	[ ! -e "$TEST_TMP/s2" ]
	# A port that is taken: the collector says so and does not start.
	start_http_collector
	run "$COLLECTOR" --socket "$TEST_TMP/s2" --http "127.0.0.1:$PORT"
	[ "$status" -eq 1 ]
	[[ $output == "memprof-collector: --http 127.0.0.1:$PORT: cannot listen: Address already in use" ]]
	[ ! -e "$TEST_TMP/s2" ]
}
