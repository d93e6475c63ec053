#!/usr/bin/env bats
# make stress: the long variants of tests/bats/hardening.bats (issue 12's
# probes at full size). Not part of make test.

load ../bats/test_helper

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

@test "400,000 stacks from one client: 200,000 kept, the memory returned after it leaves" {
	start_http_collector
	base=$(rss_kib "$COLLECTOR_PID")
	start_stack_probe 400000
	for ((i = 0; i < 3000; i++)); do
		curl -s "$URL/" | grep -q "200000 stacks and 200000 samples over the limits" && break
		sleep 0.01
	done
	curl -s "$URL/" | grep -q "200000 stacks and 200000 samples over the limits"
	held=$(rss_kib "$COLLECTOR_PID")
	end_stack_probe 30 1
	after=$(rss_kib "$COLLECTOR_PID")
	echo "# RSS: $base KiB, $held KiB holding, $after KiB after" >&3
	[ $((after - base)) -lt 16384 ]
}

@test "out of descriptors for 20 s with 100 clients: a few lines a second, under 5% CPU" {
	(ulimit -n 64 && exec "$COLLECTOR" --socket "$TEST_TMP/sock" --dir out) 2>collector.err &
	cpid=$!
	BG_PIDS+=($cpid)
	wait_for_file "$TEST_TMP/sock" 5
	"$T/probe_client" "$TEST_TMP/sock" hold 100 >probe.out &
	BG_PIDS+=($!)
	wait_for_line probe.out '^sent'
	t0=$(cpu_ticks "$cpid")
	sleep 20
	ticks=$(($(cpu_ticks "$cpid") - t0))
	said=$(grep -c 'accept: Too many open files' collector.err)
	echo "# $ticks ticks, $said lines" >&3
	[ "$said" -le 21 ]
	[ "$ticks" -lt $(($(getconf CLK_TCK) * 20 * 5 / 100)) ]
}
