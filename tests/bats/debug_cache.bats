#!/usr/bin/env bats
# The per-user cache of decompressed separate debug files (collector/debug_cache.c).

load test_helper
bats_require_minimum_version 1.5.0

# A library whose DWARF is in a separate debug file with compressed
# sections, found through .gnu_debuglink in .debug/ beside it, and a program
# that allocates 4 MiB through it.
build_split() {
	mkdir -p lib/.debug
	cc -g -O1 -fPIC -shared -Wl,--build-id -o lib/libdc.so "$ROOT/tests/c/dc_lib.c"
	objcopy --only-keep-debug --compress-debug-sections=zlib lib/libdc.so lib/.debug/libdc.so.debug
	objcopy --strip-debug --add-gnu-debuglink=lib/.debug/libdc.so.debug lib/libdc.so
	readelf -S -W lib/.debug/libdc.so.debug | grep -q ' \.debug_info .* C '
	printf '#include <stdlib.h>\nvoid *dc_alloc_in_lib(size_t);\nint main(void) { for (int i = 0; i < 64; i++) dc_alloc_in_lib(65536); return 0; }\n' >main.c
	cc -O1 -o main main.c -Llib -ldc -Wl,-rpath,"$TEST_TMP/lib"
	id=$(readelf -n lib/libdc.so | awk '/Build ID/ { print $3 }')
	[ -n "$id" ]
}

# The function and line the heap profile names for the library's frame.
lib_frame() {
	pprof -sample_index=alloc_space -lines -top "$(ls "$1"/main.*.0001.heap.pb.gz)" | grep -o 'dc_alloc_in_lib [^ ]*' | head -1
}

@test "a compressed separate debug file is decompressed once into the cache, and the copy is used after" {
	build_split
	export MEMPROF_CACHE_DIR=$TEST_TMP/cache
	run -0 "$MEMPROF" run --rate 1 -o out1 -- ./main
	[ "$(lib_frame out1)" = "dc_alloc_in_lib $ROOT/tests/c/dc_lib.c:9" ]
	copy=cache/$id.debug
	[ -f "$copy" ]
	[ "$(stat -c %a cache)" = 700 ]
	[ "$(stat -c %a "$copy")" = 600 ]
	# Decompressed: no section of the copy carries the C flag.
	! readelf -S -W "$copy" | grep -q ' \.debug_[a-z_]* .* C '
	before=$(stat -c %Y.%i "$copy")
	# The original goes: only the copy can name the line now.
	rm lib/.debug/libdc.so.debug
	run -0 "$MEMPROF" run --rate 1 -o out2 -- ./main
	[ "$(lib_frame out2)" = "dc_alloc_in_lib $ROOT/tests/c/dc_lib.c:9" ]
	[ "$(stat -c %Y.%i "$copy")" = "$before" ]
}

@test "a cache file others could have written, or a link, is not used; the cache can be turned off" {
	build_split
	export MEMPROF_CACHE_DIR=$TEST_TMP/cache
	run -0 "$MEMPROF" run --rate 1 -o out1 -- ./main
	copy=cache/$id.debug
	chmod 0666 "$copy"
	run -0 "$MEMPROF" run --rate 1 -o out2 -- ./main
	[ "$(lib_frame out2)" = "dc_alloc_in_lib $ROOT/tests/c/dc_lib.c:9" ]
	# Replaced by a good copy (the original was still there).
	[ "$(stat -c %a "$copy")" = 600 ]
	# A link to somewhere else is never followed.
	mv "$copy" elsewhere.debug
	ln -s "$TEST_TMP/elsewhere.debug" "$copy"
	rm lib/.debug/libdc.so.debug
	run -0 "$MEMPROF" run --rate 1 -o out3 -- ./main
	[ "$(lib_frame out3)" != "dc_alloc_in_lib $ROOT/tests/c/dc_lib.c:9" ]
	# Off: no directory made.
	MEMPROF_CACHE_DIR=off run -0 "$MEMPROF" run -o out4 -- ./main
	rm -rf cache
	MEMPROF_CACHE_DIR=off run -0 "$MEMPROF" run -o out5 -- ./main
	[ ! -e cache ]
}
