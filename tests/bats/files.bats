#!/usr/bin/env bats
# Files only where there is something to read: a process that recorded no
# sample writes none unless asked (--all, MEMPROF_ALL=1); --only keeps the
# named programs' files.

load test_helper
bats_require_minimum_version 1.5.0

# A wrapper as pyenv's shims are: a shell script that looks around with
# small programs, then runs python3 as its child.
make_wrapper() {
	cat >wrap.sh <<-'EOS'
	#!/bin/sh
	dir=$(dirname "$(readlink -f "$0")")
	[ -d "$dir" ] || exit 1
	env python3 "$@"
	EOS
	chmod +x wrap.sh
}

# The program names that got files in out, one a line.
programs() {
	ls out | sed 's/\.[0-9]*\.[^.]*\.heap\.pb\.gz$//; s/\.[0-9]*\.[^.]*\.cpu\.pb\.gz$//' | sort -u
}

@test "a python3 run through a shell wrapper writes files for python3 only" {
	make_wrapper
	# sh, dirname, readlink and env allocate a few KiB, python3 some MiB;
	# a heap sample is drawn every 512 KiB on average. With a fixed seed
	# every process makes the same draws, so the small ones draw none (a
	# random seed gives one of them a sample now and then, and then it has
	# something to read). A CPU sample is drawn with a chance of a
	# process's CPU time over the 10 ms period, one run in three or so for
	# sh on a busy machine: this part goes without CPU samples, and --only,
	# below, is the way to be certain. A plain environment (bats's makes
	# sh allocate more), and Debian's python3, not a pyenv shim.
	run -0 env -i PATH=/usr/bin:/bin MEMPROF_SEED=42 "$MEMPROF" run -o out --cpu-hz 0 -- ./wrap.sh -c 'print(sum(range(10)))'
	[ "$output" = 45 ]
	[ "$(programs)" = python3 ]
	ls out/python3.*.0001.heap.pb.gz out/python3.*.peak.heap.pb.gz
	[ -z "$(ls out | grep cpu)" ]
	# Whatever the wrapper does, --only makes it certain.
	rm -rf out
	run -0 env PATH=/usr/bin:/bin "$MEMPROF" run -o out --only python3 -- ./wrap.sh -c 'print(sum(range(10)))'
	[ "$output" = 45 ] || { echo "# $output" >&3; false; }
	[ "$(programs)" = python3 ]
}

@test "processes that recorded nothing write no files; --all writes them" {
	# sh, sleep and true allocate a few KiB: at a 1 GiB rate they draw no
	# sample, and use too little CPU for one at 1 Hz.
	run -0 "$MEMPROF" run -o out --rate 1g --cpu-hz 1 -- sh -c 'sleep 0.1; true'
	[ -z "$(ls out)" ]
	run -0 "$MEMPROF" run -o all --rate 1g --cpu-hz 1 --all -- sh -c 'sleep 0.1; true'
	ls all/sh.*.0001.heap.pb.gz all/sleep.*.0001.heap.pb.gz
	# A bare LD_PRELOAD's private collector takes MEMPROF_ALL from the
	# environment.
	MEMPROF_RATE=1g MEMPROF_CPU_HZ=1 MEMPROF_ALL=1 LD_PRELOAD="$SHIM" sleep 0.1
	wait_for_file "memprof-out/sleep.*.0001.heap.pb.gz" 2
}

@test "--only keeps the named programs' files; the collector takes --only and MEMPROF_ONLY" {
	make_wrapper
	run -0 "$MEMPROF" run -o out --all --only 'readlink,dirname' -- ./wrap.sh -c 'pass'
	[ "$(programs)" = "$(printf 'dirname\nreadlink')" ]
	rm -rf out
	run -0 env MEMPROF_ONLY=dirname "$MEMPROF" run -o out --all -- ./wrap.sh -c 'pass'
	[ "$(programs)" = dirname ]
	run -2 "$COLLECTOR" --only
	[[ ${lines[0]} == *"option '--only' requires an argument" ]]
}
