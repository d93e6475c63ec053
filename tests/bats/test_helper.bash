# Shared setup for the end-to-end tests: each test runs in its own short
# temporary directory (socket paths must stay under 108 bytes) with no
# MEMPROF_* settings inherited from the caller.

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
BUILD=$ROOT/build
MEMPROF=$ROOT/scripts/memprof
SHIM=$BUILD/libmemprof.so
COLLECTOR=$BUILD/memprof-collector
# make asan runs the tests with another collector (tests/asan/run).
TEST_COLLECTOR=${TEST_COLLECTOR:-}
[ -n "$TEST_COLLECTOR" ] && COLLECTOR=$TEST_COLLECTOR
T=$BUILD/tests

setup() {
	while read -r name; do unset "$name"; done < <(compgen -e | grep '^MEMPROF_' || true)
	unset LD_PRELOAD DEBUGINFOD_URLS
	# Decompressed debug files are cached for every test's collectors in
	# build/, not in the user's home.
	export MEMPROF_CACHE_DIR=$BUILD/debug-cache
	# The front end and the shim start this collector too.
	[ -z "$TEST_COLLECTOR" ] || export MEMPROF_COLLECTOR=$TEST_COLLECTOR
	TEST_TMP=$(mktemp -d /tmp/mpt.XXXXXX)
	cd "$TEST_TMP" || return 1
	BG_PIDS=()
}

teardown() {
	local pid
	for pid in "${BG_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	# Private collectors (a bare LD_PRELOAD's) may still be writing the
	# last profiles into the test's directory: let them finish.
	local i
	for ((i = 0; i < 1000; i++)); do
		pgrep -f "memprof-collector .*$TEST_TMP" >/dev/null || break
		sleep 0.01
	done
	cd /
	rm -rf "$TEST_TMP"
}

# Runs go tool pprof quietly (it prints "File: ..." headers on stderr).
pprof() {
	go tool pprof "$@" 2>/dev/null
}

# top_value COLUMN FILE SAMPLE_INDEX FUNCTION: the flat (column 1) or cum
# (column 4) value of FUNCTION in go tool pprof -top, as a plain integer in
# the profile's base unit (bytes, objects, nanoseconds, samples); 0 when the
# function is not listed.
top_value() {
	local col=$1 file=$2 index=$3 fn=$4 unit=B
	[ "$index" = cpu ] && unit=ns
	pprof -sample_index="$index" -unit="$unit" -nodefraction=0 -top "$file" |
		awk -v fn="$fn" -v col="$col" '
			/^ *flat / { table = 1; next }
			table {
				name = $0
				sub(/^ *[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +/, "", name)
				if (name == fn) { v = $col; sub(/[a-zA-Z]+$/, "", v); print v; found = 1; exit }
			}
			END { if (!found) print 0 }'
}

flat() { top_value 1 "$@"; }
cum() { top_value 4 "$@"; }

# How many samples FILE (a gzipped profile.proto) holds: its top-level
# field 2 entries, counted without decoding them (go tool pprof -raw takes
# seconds on a profile of 100,000 stacks).
sample_count() {
	python3 - "$1" <<'EOF'
import gzip, sys
b = gzip.open(sys.argv[1]).read()
i = n = 0
def varint():
    global i
    v = s = 0
    while True:
        c = b[i]; i += 1
        v |= (c & 0x7f) << s; s += 7
        if c < 0x80:
            return v
while i < len(b):
    tag = varint()
    wt = tag & 7
    if wt == 0:
        varint()
    elif wt == 1:
        i += 8
    elif wt == 5:
        i += 4
    elif wt == 2:
        length = varint()
        i += length
    else:
        sys.exit("bad wire type %d" % wt)
    n += tag >> 3 == 2
print(n)
EOF
}

# total VALUE of SAMPLE_INDEX in FILE(s) (several are merged).
total() {
	local index=$1 unit=B
	shift
	[ "$index" = cpu ] && unit=ns
	pprof -sample_index="$index" -unit="$unit" -top "$@" |
		awk '/^Showing nodes accounting for/ {
			for (i = 1; i < NF; i++) if ($i == "of") { v = $(i + 1); sub(/[a-zA-Z]+$/, "", v); print v; exit }
		}'
}

# within ACTUAL EXPECTED PERCENT: true when ACTUAL is within PERCENT% of
# EXPECTED; says the figures either way.
within() {
	local actual=$1 expected=$2 pct=$3
	local ok
	ok=$(awk -v a="$actual" -v e="$expected" -v p="$pct" \
		'BEGIN { d = a - e; if (d < 0) d = -d; print (d <= e * p / 100) ? 1 : 0 }')
	echo "# $actual vs $expected (tolerance $pct%): $([ "$ok" = 1 ] && echo ok || echo OUT)" >&3
	[ "$ok" = 1 ]
}

# Waits up to SECONDS for a file matching GLOB; prints its name.
wait_for_file() {
	local glob=$1 seconds=$2 i f
	for ((i = 0; i < seconds * 100; i++)); do
		for f in $glob; do
			if [ -e "$f" ]; then
				echo "$f"
				return 0
			fi
		done
		sleep 0.01
	done
	return 1
}

# Waits until FILE has a line matching REGEX (a program said it is ready).
wait_for_line() {
	local file=$1 regex=$2 i
	for ((i = 0; i < 3000; i++)); do
		grep -qE "$regex" "$file" 2>/dev/null && return 0
		sleep 0.01
	done
	echo "# timed out waiting for /$regex/ in $file" >&3
	return 1
}

# `memprof run -o out ARGS...` in the background (ARGS ends with -- and the
# command), its output in prog.out and prog.err; once the command prints
# "ready PID", sets RUN_PID (the front end) and PID (the program).
run_until_ready() {
	rm -f prog.out prog.err # a second start must not find the first's "ready"
	"$MEMPROF" run -o out "$@" >prog.out 2>prog.err &
	BG_PIDS+=($!)
	RUN_PID=$!
	wait_for_line prog.out '^ready'
	PID=$(awk '/^ready/ { print $2 }' prog.out)
}

# Until a collector listens on the test directory's socket, at most 5 s.
wait_for_socket() {
	local i
	for ((i = 0; i < 500; i++)); do
		[ -S "$TEST_TMP/sock" ] && return 0
		sleep 0.01
	done
	return 1
}

# A collector of our own on a socket in the test directory (its pid in
# COLLECTOR_PID); the arguments go to it.
start_collector() {
	"$COLLECTOR" --socket "$TEST_TMP/sock" --dir out "$@" 2>collector.err &
	COLLECTOR_PID=$!
	BG_PIDS+=($COLLECTOR_PID)
	wait_for_socket
}

# A collector on a socket in the test directory, serving HTTP on a port of
# the kernel's choice; sets COLLECTOR_PID, PORT and URL (the /debug/pprof/ base).
start_http_collector() {
	"$COLLECTOR" --socket "$TEST_TMP/sock" --dir out --http 127.0.0.1:0 "$@" 2>collector.err &
	COLLECTOR_PID=$!
	BG_PIDS+=($COLLECTOR_PID)
	disown # teardown kills it; no "Killed" notice
	wait_for_line collector.err 'http: listening on 127\.0\.0\.1:[0-9]+ '
	PORT=$(sed -n 's/.*http: listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' collector.err)
	URL=http://127.0.0.1:$PORT/debug/pprof
	wait_for_socket
}

# Resident memory of process PID, in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# tests/c/probe_client sending N distinct stacks, one live sample each, to
# the test's collector, its connection held open (coproc PROBE); sets pid
# (the one it said hello as) once all are sent.
start_stack_probe() {
	coproc PROBE { "$T/probe_client" "$TEST_TMP/sock" stacks "$1"; }
	BG_PIDS+=($PROBE_PID)
	local sent
	read -r pid <&"${PROBE[0]}"
	read -r sent <&"${PROBE[0]}"
	[ "$sent" = sent ]
}

# The stack probe leaves; waits at most TIMEOUT s for its final profile and
# its peak profile (written after it: encoding 200,000 stacks takes a
# while), then SETTLE s, so that memory is measured once both are out.
end_stack_probe() {
	exec {PROBE[1]}>&-
	wait_for_file "out/probe.$pid.0001.heap.pb.gz" "$1"
	wait_for_file "out/probe.$pid.peak.heap.pb.gz" "$1"
	sleep "$2"
}

# Every location of every profile given has a function name.
all_locations_named() {
	local f bad
	for f in "$@"; do
		bad=$(pprof -raw "$f" | awk '
			/^Locations/ { loc = 1; next }
			/^Mappings/ { loc = 0 }
			loc && /^ *[0-9]+: / && NF < 4 { print }')
		if [ -n "$bad" ]; then
			echo "# $f has unnamed locations:" >&3
			echo "$bad" | head -5 | sed 's/^/#   /' >&3
			return 1
		fi
	done
}

# dump_target_heap DIR: a heap profile of target_heap (48 MiB in hold_big,
# 16 MiB in hold_small, a churn) dumped into DIR at --rate 65536, made
# here rather than kept in git; prints its path. With a fixed seed: the
# tests that read it check what memprof shows of a known heap, and with
# random ones hold_small's 256 or so samples came out outside top.bats's
# window now and then (stress.bats judges the sampling over many seeds).
dump_target_heap() {
	local dir=$1 pid
	MEMPROF_SEED=1 "$MEMPROF" run -o "$dir" --rate 65536 -- "$T/target_heap" >"$dir.prog.out" 2>&1 &
	wait_for_line "$dir.prog.out" '^ready [0-9]+' || return 1
	pid=$(awk '/^ready/ { print $2 }' "$dir.prog.out")
	kill -USR2 "$pid"
	wait_for_file "$dir/target_heap.$pid.0001.heap.pb.gz" 20 >/dev/null || return 1
	kill -USR1 "$pid"
	wait
	echo "$dir/target_heap.$pid.0001.heap.pb.gz"
}
