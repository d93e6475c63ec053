#!/usr/bin/env bats
# Names for stripped binaries: the symbol tables they keep (.dynsym, and
# MiniDebugInfo's .gnu_debugdata), module+0xoff only where nothing names
# the address, and where debug files are missing, how to get them.

load test_helper
bats_require_minimum_version 1.5.0

# make_minidebuginfo IN OUT: a stripped copy of IN that keeps its function
# symbols in .gnu_debugdata, as Fedora builds its binaries (gdb's
# "MiniDebugInfo" recipe).
make_minidebuginfo() {
	local in=$1 out=$2
	cp "$in" "$out"
	nm -D "$out" --format=posix --defined-only | awk '{ print $1 }' | sort >dynsyms
	nm "$out" --format=posix --defined-only | awk '$2 ~ /^[Tt]$/ { print $1 }' | sort >funcsyms
	comm -13 dynsyms funcsyms >keep_symbols
	objcopy -S --remove-section .gdb_index --remove-section .comment \
		--keep-symbols=keep_symbols "$out" mini_debuginfo
	strip --strip-all -R .comment "$out"
	xz -f mini_debuginfo
	objcopy --add-section .gnu_debugdata=mini_debuginfo.xz "$out"
}

@test "sqlite3 without its debug package: its exported functions are named, the comments say how to get the rest" {
	lib=$(ldd "$(command -v sqlite3)" | awk '/libsqlite3/ { print $3 }')
	id=$(readelf -n "$lib" | awk '/Build ID/ { print $3 }')
	[ ! -e "/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug" ] ||
		skip "libsqlite3's debug symbols are installed"
	run -0 "$MEMPROF" run -o out --rate 4096 -- sqlite3 :memory: \
		"create table t(a, b); with recursive c(x) as (select 1 union all select x + 1 from c where x < 5000)
		 insert into t select x, randomblob(100) from c; select count(*) from t;"
	[ "$output" = 5000 ]
	f=$(echo out/sqlite3.*.0001.heap.pb.gz)
	run pprof -raw "$f"
	# .dynsym names what the library exports.
	[[ $output == *" sqlite3_exec "* ]]
	[[ $output == *" sqlite3_step "* || $output == *" sqlite3_prepare_v2 "* ]]
	# What nothing names is module+0xoff.
	[[ $output == *" libsqlite3.so.0+0x"* ]]
	run pprof -comments "$f"
	echo "$output" | sed 's/^/# /' >&3
	[[ $output == *"no debug information for "*"libsqlite3.so.0"* ]]
	[[ $output == *"-dbgsym package"* ]]
	[[ $output == *"DEBUGINFOD_URLS"* ]]
}

@test "a stripped binary with MiniDebugInfo has its static functions named; without, module+0xoff" {
	make_minidebuginfo "$T/target_peak" mini_peak
	readelf -S mini_peak | grep -q gnu_debugdata
	[ -z "$(nm mini_peak 2>/dev/null | grep phase_a)" ]
	MEMPROF_SEED=42 "$MEMPROF" run -o out --rate 65536 -- ./mini_peak
	within "$(flat out/mini_peak.*.peak.heap.pb.gz inuse_space phase_a)" $((64 * 1024 * 1024)) 10
	within "$(flat out/mini_peak.*.0001.heap.pb.gz inuse_space phase_b)" $((16 * 1024 * 1024)) 10
	run pprof -comments out/mini_peak.*.0001.heap.pb.gz
	[[ $output == *"no debug information for $TEST_TMP/mini_peak"* ]]

	cp "$T/target_peak" bare_peak
	strip --strip-all bare_peak
	"$MEMPROF" run -o bare --rate 65536 -- ./bare_peak
	run pprof -top bare/bare_peak.*.0001.heap.pb.gz
	[[ $output == *"bare_peak+0x"* ]]
	[[ $output != *"phase_b"* ]]
}

@test "the index page says once which files have no debug information, and how to get them" {
	cp "$T/target_heap" bare_heap
	strip --strip-all bare_heap
	"$COLLECTOR" --socket "$TEST_TMP/sock" --dir out --http 127.0.0.1:0 2>collector.err &
	BG_PIDS+=($!)
	disown
	wait_for_line collector.err 'http: listening on 127\.0\.0\.1:[0-9]+ '
	port=$(sed -n 's/.*http: listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' collector.err)
	wait_for_socket
	for n in 1 2; do
		MEMPROF_SOCKET="$TEST_TMP/sock" MEMPROF_RATE=65536 LD_PRELOAD="$SHIM" ./bare_heap >prog$n.out &
		BG_PIDS+=($!)
		wait_for_line prog$n.out '^ready'
		kill -USR2 "$(awk '/^ready/ { print $2 }' prog$n.out)"
	done
	sleep 0.5
	curl -sS "http://127.0.0.1:$port/debug/pprof/" >index.html
	[ "$(grep -c 'No debug information for' index.html)" -eq 1 ]
	grep 'No debug information for' index.html | grep -q "$TEST_TMP/bare_heap"
	[ "$(grep -o "$TEST_TMP/bare_heap" index.html | wc -l)" -eq 1 ]
	grep -q 'DEBUGINFOD_URLS' index.html
}
