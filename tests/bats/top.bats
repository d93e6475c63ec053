#!/usr/bin/env bats
# memprof top: go tool pprof -top's table without Go.

load test_helper

# Profiles made once for the file (not kept in git): target_heap's heap,
# and python3's heap and CPU.
setup_file() {
	cd "$BATS_FILE_TMPDIR" || return 1
	ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd) T=$ROOT/build/tests MEMPROF=$ROOT/scripts/memprof
	export MEMPROF_CACHE_DIR=$ROOT/build/debug-cache
	rm -rf heap py
	mkdir -p heap
	dump_target_heap "$BATS_FILE_TMPDIR/heap/out" >heap/path || return 1
	"$MEMPROF" run -o "$BATS_FILE_TMPDIR/py" --rate 65536 -- python3 -c \
		'import json; d = [{"k": i, "v": str(i) * 10} for i in range(200000)]; print(len(json.dumps(d)))' \
		>/dev/null || return 1
}

# The profiles setup_file made.
HEAP() { cat "$BATS_FILE_TMPDIR/heap/path"; }
PYHEAP() { ls "$BATS_FILE_TMPDIR"/py/python3.*.0001.heap.pb.gz; }
PYCPU() { ls "$BATS_FILE_TMPDIR"/py/python3.*.0001.cpu.pb.gz; }

# rows FILE: "name flat cum" for the first 10 rows of a -top table.
rows() {
	awk '/^ *flat +flat%/ { t = 1; next }
		t && n < 10 { name = $0; sub(/^ *[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +/, "", name)
			print name " | " $1 " | " $4; n++ }' "$1"
}

@test "memprof top prints what go tool pprof -top prints, to the letter" {
	export TZ=UTC
	for f in "$(HEAP)" "$(PYHEAP)"; do
		pprof -top "$f" >go.txt
		"$MEMPROF" top "$f" >out.txt
		diff -u go.txt out.txt
		pprof -top -sample_index=alloc_objects -cum -nodecount 10 "$f" >go.txt
		"$MEMPROF" top -sample_index=alloc_objects -cum -nodecount 10 "$f" >out.txt
		diff -u go.txt out.txt
	done
	pprof -top "$(PYCPU)" >go.txt
	"$MEMPROF" top "$(PYCPU)" >out.txt
	diff -u go.txt out.txt
}

@test "memprof top of a known heap: hold_big and hold_small at 48 and 16 MiB" {
	"$MEMPROF" top "$(HEAP)" >out.txt
	grep -qx "      flat  flat%   sum%        cum   cum%" out.txt
	# The first two rows, within sampling's noise of 48 and 16 MiB: pprof's
	# "MB" is 2^20 bytes (30 seeds: means 47.78 and 16.00), so the window
	# is around 48 and 16, not 50.3 and 16.8.
	sed -n '/^ *flat  flat%/{n;p;n;p}' out.txt >rows.txt
	read -r big _ _ _ _ name < <(sed -n 1p rows.txt)
	[ "$name" = hold_big ]
	awk -v v="${big%MB}" 'BEGIN { exit !(v >= 48 * 0.85 && v <= 48 * 1.15) }'
	read -r small _ _ _ _ name < <(sed -n 2p rows.txt)
	[ "$name" = hold_small ]
	awk -v v="${small%MB}" 'BEGIN { exit !(v >= 16 * 0.85 && v <= 16 * 1.15) }'
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
	read -r one _ _ _ _ _ < <("$MEMPROF" top "$(HEAP)" | sed -n '/^ *flat  flat%/{n;p}')
	"$MEMPROF" top "$(HEAP)" "$(HEAP)" >two.txt
	# The same file twice: hold_big twice as big, the same shares.
	read -r two _ _ _ _ name < <(sed -n '/^ *flat  flat%/{n;p}' two.txt)
	[ "$name" = hold_big ]
	awk -v a="${one%MB}" -v b="${two%MB}" 'BEGIN { d = b - 2 * a; exit !(d < 0.02 && d > -0.02) }'
	echo garbage >bad.pb.gz
	run "$MEMPROF" top bad.pb.gz
	[ "$status" -eq 1 ]
	[ "$output" = "memprof-collector: bad.pb.gz: not a profile.proto (pprof) profile" ]
	run "$MEMPROF" top -sample_index=nope "$(HEAP)"
	[ "$status" -eq 2 ]
	[ "$output" = "memprof-collector: no sample type 'nope' in the profile (it has alloc_objects, alloc_space, inuse_objects, inuse_space)" ]
	run "$MEMPROF" top
	[ "$status" -eq 2 ]
	[[ $output == "usage: memprof top "* ]]
	run "$MEMPROF" top "$(HEAP)" "$(PYCPU)"
	[ "$status" -eq 1 ]
	[[ $output == *"different sample types"* ]]
}
