#!/usr/bin/env bats
# memprof top: go tool pprof -top's table without Go.

load test_helper

DATA=$ROOT/tests/data

# rows FILE: "name flat cum" for the first 10 rows of a -top table.
rows() {
	awk '/^ *flat +flat%/ { t = 1; next }
		t && n < 10 { name = $0; sub(/^ *[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +/, "", name)
			print name " | " $1 " | " $4; n++ }' "$1"
}

@test "memprof top prints what go tool pprof -top printed for recorded profiles, to the letter" {
	export TZ=UTC
	for f in target_heap.heap python3.heap; do
		"$MEMPROF" top "$DATA/$f.pb.gz" >out.txt
		diff -u "$DATA/$f.top" out.txt
		"$MEMPROF" top -sample_index=alloc_objects -cum -nodecount 10 "$DATA/$f.pb.gz" >out.txt
		diff -u "$DATA/$f.alloc_objects-cum-10.top" out.txt
	done
	"$MEMPROF" top "$DATA/python3.cpu.pb.gz" >out.txt
	diff -u "$DATA/python3.cpu.top" out.txt
}

@test "memprof top of a known heap: hold_big and hold_small at 48 and 16 MiB" {
	run "$MEMPROF" top "$DATA/target_heap.heap.pb.gz"
	[ "$status" -eq 0 ]
	[[ ${lines[7]} == "      flat  flat%   sum%        cum   cum%" ]]
	[[ ${lines[8]} == "   47.65MB 73.76% 73.76%    47.65MB 73.76%  hold_big" ]]
	[[ ${lines[9]} == "   16.88MB 26.14% 99.90%    16.88MB 26.14%  hold_small" ]]
}

@test "memprof top's flat and cum match go tool pprof -top's top 10 for a fresh profile, every sample type" {
	"$MEMPROF" run -o out --rate 65536 -- "$T/target_heap" >prog.out 2>&1 &
	wait_for_line prog.out '^ready [0-9]+'
	local pid
	pid=$(awk '/^ready/ { print $2 }' prog.out)
	kill -USR2 "$pid"
	wait_for_file "out/target_heap.$pid.0001.heap.pb.gz" 20
	kill -USR1 "$pid"
	wait
	for f in out/target_heap.*.pb.gz; do
		for index in "" alloc_objects alloc_space inuse_objects samples; do
			[[ $index == samples && $f != *cpu* ]] && continue
			[[ $index != samples && -n $index && $f == *cpu* ]] && continue
			for sort in "" -cum; do
				pprof -top ${index:+-sample_index=$index} $sort "$f" >go.txt
				"$MEMPROF" top ${index:+-sample_index=$index} $sort "$f" >mp.txt
				rows go.txt >go.rows
				rows mp.txt >mp.rows
				[ -s go.rows ] || [[ $f != *0001.heap* ]] || { echo "no rows: $f $index" && false; }
				diff -u go.rows mp.rows
			done
		done
	done
}

@test "memprof top: merged files, bad files and bad options are said plainly" {
	run "$MEMPROF" top "$DATA/target_heap.heap.pb.gz" "$DATA/target_heap.heap.pb.gz"
	[ "$status" -eq 0 ]
	[[ ${lines[8]} == "   95.29MB 73.76% 73.76%    95.29MB 73.76%  hold_big" ]]
	echo garbage >bad.pb.gz
	run "$MEMPROF" top bad.pb.gz
	[ "$status" -eq 1 ]
	[ "$output" = "memprof-collector: bad.pb.gz: not a profile.proto (pprof) profile" ]
	run "$MEMPROF" top -sample_index=nope "$DATA/target_heap.heap.pb.gz"
	[ "$status" -eq 2 ]
	[ "$output" = "memprof-collector: no sample type 'nope' in the profile (it has alloc_objects, alloc_space, inuse_objects, inuse_space)" ]
	run "$MEMPROF" top
	[ "$status" -eq 2 ]
	[[ $output == "usage: memprof top "* ]]
	run "$MEMPROF" top "$DATA/target_heap.heap.pb.gz" "$DATA/python3.cpu.pb.gz"
	[ "$status" -eq 1 ]
	[[ $output == *"different sample types"* ]]
}
