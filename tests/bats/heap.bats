#!/usr/bin/env bats
# Heap profiles end to end: known shapes in, go tool pprof figures out.

load test_helper

# target_heap under memprof run; sets PID once the program is ready.
start_target_heap() {
	run_until_ready "$@" -- "$T/target_heap"
}

@test "a USR2 dump shows each function's live heap within 15% and the churn within 15%" {
	# A fixed seed makes the draw the same on every run: 16 MiB in 64-byte
	# blocks is only ~256 samples at this rate (sd 6%), so a random seed
	# would fail this bound now and then. tests/stress checks the estimator
	# over many random seeds instead.
	MEMPROF_SEED=42 start_target_heap --rate 65536
	kill -USR2 "$PID"
	f=$(wait_for_file "out/target_heap.$PID.0001.heap.pb.gz" 1)

	within "$(flat "$f" inuse_space hold_big)" $((48 * 1024 * 1024)) 15
	within "$(flat "$f" inuse_space hold_small)" $((16 * 1024 * 1024)) 15
	within "$(flat "$f" inuse_objects hold_big)" 12288 20
	within "$(flat "$f" inuse_objects hold_small)" 262144 20
	within "$(flat "$f" alloc_space churn)" $((256 * 1024 * 1024)) 15
	[ "$(flat "$f" inuse_space churn)" -eq 0 ]

	kill -USR1 "$PID"
	wait "$RUN_PID"
	final=out/target_heap.$PID.0002.heap.pb.gz
	[ -f "$final" ]
	[ "$(flat "$final" inuse_space hold_big)" -eq 0 ]
	[ "$(flat "$final" inuse_space hold_small)" -eq 0 ]
	# What was allocated is still counted as allocated.
	within "$(flat "$final" alloc_space hold_big)" $((48 * 1024 * 1024)) 15
}

@test "heap profiles carry Go's four sample types, the rate as period and a bytes label" {
	start_target_heap --rate 65536
	kill -USR1 "$PID"
	wait "$RUN_PID"
	f=$(wait_for_file "out/target_heap.$PID.0001.heap.pb.gz" 1)
	run pprof -raw "$f"
	[[ $output == *"alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes[dflt]"* ]]
	[[ $output == *"PeriodType: space bytes"* ]]
	[[ $output == *"Period: 65536"* ]]
	[[ $output == *"bytes:[4096]"* ]]
	[[ $output == *"bytes:[64]"* ]]
}

@test "C++ names are demangled, -lines shows file:line, a dlopen'd library's function is named" {
	"$MEMPROF" run -o out --rate 4096 -- "$T/target_cxx" "$T/libplugin.so"
	f=$(echo out/target_cxx.*.0001.heap.pb.gz)
	run pprof -top "$f"
	echo "$output" | sed 's/^/# /' >&3
	[[ $output == *"shapes::Canvas::paint"* ]]
	[[ $output == *"make_many<double>"* ]]
	[[ $output == *"plugin_allocate"* ]]
	within "$(flat "$f" inuse_space shapes::Canvas::paint)" $((8 * 1024 * 1024)) 15
	within "$(flat "$f" inuse_space plugin_allocate)" $((4 * 1024 * 1024)) 15
	run pprof -top -lines "$f"
	[[ $output == *"shapes::Canvas::paint tests/c/target_cxx.cpp:2"* ]]
	[[ $output == *"plugin_allocate tests/c/plugin.c:14"* ]]
	# The mangled name is kept as the system name.
	run pprof -raw "$f"
	all_locations_named "$f"
}

@test "python3 under memprof run prints what a bare run prints, and its profile has Py functions" {
	script='import json
d = [{"k": i, "v": str(i) * 10} for i in range(100000)]
print(len(json.dumps(d)), sum(len(x["v"]) for x in d))'
	bare=$(PYTHONMALLOC=malloc python3 -c "$script" 2>&1)
	run env PYTHONMALLOC=malloc "$MEMPROF" run -o out -- python3 -c "$script"
	[ "$status" -eq 0 ]
	[ "$output" = "$bare" ]
	f=$(ls out/python3*.heap.pb.gz | head -1)
	run pprof -sample_index=alloc_space -top "$f"
	echo "$output" | head -12 | sed 's/^/# /' >&3
	[[ $output =~ Py[A-Za-z_]+ ]]
	all_locations_named out/*.pb.gz
}

@test "gcc -c under memprof run builds the same object and yields profiles for gcc, cc1 and as" {
	printf '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n' >x.c
	gcc -c x.c -o bare.o
	# as, on so small a file, may draw no sample: --all asks for its
	# files anyway (this is about following the tree).
	"$MEMPROF" run -o out --all -- gcc -c x.c -o prof.o
	cmp bare.o prof.o
	ls out/gcc.*.heap.pb.gz out/cc1.*.heap.pb.gz out/as.*.heap.pb.gz
	all_locations_named out/*.pb.gz
}

@test "eight threads with a fork and an exec finish with the right answer at the default rate and at rate 1" {
	expected=$("$T/target_threads")
	[[ $expected == "checksum "* ]]
	run "$MEMPROF" run -o out -- "$T/target_threads"
	[ "$status" -eq 0 ]
	[ "$output" = "$expected" ]
	run "$MEMPROF" run -o out --rate 1 -- "$T/target_threads"
	[ "$status" -eq 0 ]
	[ "$output" = "$expected" ]
	# The exec'd child reported on its own, under its own pid.
	[ "$(ls out/target_threads.*.heap.pb.gz | sed 's/\.[0-9]*\.heap.*//' | sort -u | wc -l)" -ge 4 ]
}

@test "blocks freed by another thread than made them: at rate 1 each is counted once and none stays in use" {
	# Each thread sends its own events at rate 1, so a consumer's free
	# often reaches the collector before its producer's allocation; the
	# two are matched by the id the block carries, not by arrival order.
	run_until_ready --rate 1 -- "$T/target_handoff"
	kill -USR2 "$PID"
	f=$(wait_for_file "out/target_handoff.$PID.0001.heap.pb.gz" 1)
	[ "$(flat "$f" alloc_objects make_block)" -eq 300000 ]
	[ "$(flat "$f" inuse_objects make_block)" -eq 0 ]
	[ "$(flat "$f" inuse_objects consume)" -eq 0 ]
	[ "$(flat "$f" alloc_objects consume)" -eq 18750 ]
	kill -USR1 "$PID"
	wait "$RUN_PID"
}

@test "at rate 1 the tallies are exact: more threads than slots, slots handed on, many sizes, a fork child" {
	# Full trace counts per (stack, size) in the program (shim/tally.c);
	# target_tally prints what it did, and each count must be in the
	# profiles exactly: 300 threads at once (more than the 256 slots, so
	# some count by events), two waves (slots handed on with their counts),
	# blocks freed by main after their threads ended, main's blocks freed
	# by threads with and without a slot, 500 sizes from one
	# stack, and a fork child that frees 100 inherited blocks and makes 7.
	run "$MEMPROF" run -o out --rate 1 --cpu-hz 0 -- "$T/target_tally"
	[ "$status" -eq 0 ]
	[ "$output" = "kept 1000 in_wave 6000 in_use 0 to_give 1200 sized 1000 in_use 500 child_kept 900 in_child 7" ]
	parent=$(ls out/target_tally.*.0001.heap.pb.gz | head -1)
	child=$(ls out/target_tally.*.0001.heap.pb.gz | tail -1)
	[ "$parent" != "$child" ]
	# The parent ends first in pid order unless pids wrapped: tell them
	# apart by what only the child has.
	if [ "$(flat "$parent" alloc_objects in_child)" -ne 0 ]; then
		t=$parent parent=$child child=$t
	fi
	[ "$(flat "$parent" alloc_objects kept)" -eq 1000 ]
	[ "$(flat "$parent" inuse_objects kept)" -eq 1000 ]
	[ "$(flat "$parent" inuse_space kept)" -eq 48000 ]
	[ "$(flat "$parent" alloc_objects in_wave)" -eq 6000 ]
	[ "$(flat "$parent" alloc_space in_wave)" -eq 480000 ]
	[ "$(flat "$parent" inuse_objects in_wave)" -eq 0 ]
	[ "$(flat "$parent" alloc_objects to_give)" -eq 1200 ]
	[ "$(flat "$parent" inuse_objects to_give)" -eq 0 ]
	[ "$(flat "$parent" alloc_objects sized)" -eq 1000 ]
	[ "$(flat "$parent" inuse_objects sized)" -eq 500 ]
	# sum of 16 + 8i for i < 500, the kept copy of each size
	[ "$(flat "$parent" inuse_space sized)" -eq 1006000 ]
	[ "$(flat "$child" inuse_objects kept)" -eq 900 ]
	[ "$(flat "$child" inuse_objects sized)" -eq 500 ]
	[ "$(flat "$child" inuse_objects in_child)" -eq 7 ]
	[ "$(flat "$child" alloc_objects in_child)" -eq 7 ]
	[ "$(flat "$child" inuse_objects in_wave)" -eq 0 ]
}

@test "at rate 1 more stacks than the tally table holds: the rest go as events, every count and stack kept" {
	# target_many_stacks allocates from 150,000 distinct stacks: past the
	# shim's 131,072 tallied stacks (MP_TALLY_GIDS) allocations go as
	# events, below the collector's 200,000 (PROC_MAX_STACKS).
	run "$MEMPROF" run -o out --rate 1 --cpu-hz 0 -- "$T/target_many_stacks"
	[ "$status" -eq 0 ]
	[ "$output" = "stacks 150000 kept 75000" ]
	f=$(ls out/target_many_stacks.*.0001.heap.pb.gz)
	[ "$(flat "$f" alloc_objects leaf_alloc)" -eq 150000 ]
	[ "$(flat "$f" inuse_objects leaf_alloc)" -eq 75000 ]
	# One sample per stack, and printf's buffer: no two stacks merged.
	[ "$(sample_count "$f")" -eq 150001 ]
}

@test "at rate 1 stacks that start alike are told apart: every allocation counted under its own callers" {
	# target_same_stack calls one leaf from two callers whose frames are
	# the same size, so the stack walk starts at the same ip and stack
	# pointer for both; the walk's memo and the events that leave out a
	# stack sent before must keep the two apart, and count every block.
	expected=$("$T/target_same_stack")
	[ "$expected" = "via_a 30000 via_b 20000 leaf 50000 deep 20000" ]
	run "$MEMPROF" run -o out --rate 1 -- "$T/target_same_stack"
	[ "$status" -eq 0 ]
	[ "$output" = "$expected" ]
	f=$(ls out/target_same_stack.*.0001.heap.pb.gz)
	[ "$(flat "$f" alloc_objects leaf)" -eq 50000 ]
	[ "$(cum "$f" alloc_objects via_a)" -eq 30000 ]
	[ "$(cum "$f" alloc_objects via_b)" -eq 20000 ]
	[ "$(flat "$f" alloc_objects deep)" -eq 20000 ]
	[ "$(flat "$f" inuse_objects leaf)" -eq 0 ]
}

@test "every allocator entry point works on sampled blocks, and their frees are all seen" {
	# At rate 1 every block is a sampled one: the program checks alignment,
	# calloc's zeros, realloc's copies and malloc_usable_size itself.
	expected=$("$T/target_alloc_api" leak)
	[[ $expected == "ok "* ]]
	for rate in 1 4096; do
		rm -rf out
		run "$MEMPROF" run -o out --rate "$rate" -- "$T/target_alloc_api" leak
		[ "$status" -eq 0 ]
		[ "$output" = "$expected" ]
	done
	# Rate 1 counts exactly: everything round_of asked for, none of it
	# left at exit; main's one block still live.
	"$MEMPROF" run -o out1 --rate 1 -- "$T/target_alloc_api" leak >/dev/null
	profile=$(ls out1/target_alloc_api.*.0001.heap.pb.gz)
	[ "$(flat "$profile" alloc_space round_of)" = "${expected#ok }" ]
	[ "$(flat "$profile" inuse_space round_of)" = 0 ]
	[ "$(flat "$profile" inuse_space main)" = 40000 ]
	[ "$(flat "$profile" inuse_objects main)" = 1 ]
}

@test "go tool pprof accepts every file with -top, -traces and -diff_base" {
	MEMPROF_SEED=7 start_target_heap --rate 65536
	kill -USR2 "$PID"
	first=$(wait_for_file "out/target_heap.$PID.0001.heap.pb.gz" 1)
	kill -USR1 "$PID"
	wait "$RUN_PID"
	"$MEMPROF" run -o out --rate 4096 -- "$T/target_cxx" "$T/libplugin.so" >/dev/null
	cpu_first=${first%.heap.pb.gz}.cpu.pb.gz
	for f in out/*.pb.gz; do
		go tool pprof -top "$f" >/dev/null
		go tool pprof -traces "$f" >/dev/null
		case $f in
		*.heap.pb.gz) go tool pprof -diff_base "$first" -top "$f" >/dev/null ;;
		*.cpu.pb.gz) go tool pprof -diff_base "$cpu_first" -top "$f" >/dev/null ;;
		esac
	done
	all_locations_named out/*.pb.gz
	# Between the live dump and the exit dump, the diff is the freed heap.
	run pprof -diff_base "$first" -sample_index=inuse_space -unit=B -top out/target_heap.$PID.0002.heap.pb.gz
	[[ $output == *"-"*"hold_big"* ]]
}
