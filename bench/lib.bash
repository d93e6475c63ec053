# bench/lib.bash: what the bench/ scripts share (sourced, not run). The caller sets quiet_wait (seconds a run may wait for a quiet
# machine) before calling wait_quiet, and reads quiet_waited (seconds
# waited in all) for its report.

hz=$(getconf CLK_TCK)
ncpu=$(nproc)

# The environment bench/realprog's workloads run in: no profiler or
# allocator setting of the caller's, fixed hash seeds (the same output
# every run), no git configuration of the user's or the system's.
workload_env() {
	unset LD_PRELOAD MALLOC_CONF "${!MEMPROF_@}" "${!GIT_@}"
	export LC_ALL=C PYTHONHASHSEED=0 PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0 GIT_CONFIG_NOSYSTEM=1 \
		GIT_CONFIG_GLOBAL=/dev/null
}

# wait_for_socket PATH TRIES: until a collector listens at PATH, at most
# TRIES x 10 ms; 1 if it did not.
wait_for_socket() {
	local i
	for ((i = 0; i < $2; i++)); do
		[ -S "$1" ] && return 0
		sleep 0.01
	done
	return 1
}

# Idle time of all CPUs so far (idle + iowait), in clock ticks.
idle_ticks() {
	local _cpu _u _n _s idle iowait _rest
	read -r _cpu _u _n _s idle iowait _rest </proc/stat
	echo $((idle + iowait))
}

quiet_waited=0
# Returns once the machine was less than 10% busy over 0.3 s, or after
# quiet_wait seconds of waiting (the run is then judged as it comes).
wait_quiet() {
	local start=$SECONDS waited=0 i0 i1
	while :; do
		i0=$(idle_ticks)
		sleep 0.3
		i1=$(idle_ticks)
		# idle for over 90% of 0.3 s on every CPU: (i1 - i0) / hz > 0.27 * ncpu
		if ((100 * (i1 - i0) > 27 * hz * ncpu)); then
			[ "$waited" -eq 0 ] || printf ' (waited %ds)' "$waited" >&2
			return 0
		fi
		# shellcheck disable=SC2154 # quiet_wait: the caller's
		if ((waited >= quiet_wait)); then
			printf ' (busy machine: went on after %ds)' "$waited" >&2
			return 0
		fi
		sleep 1
		quiet_waited=$((quiet_waited + SECONDS - start - waited))
		waited=$((SECONDS - start))
	done
}

# shuffle ARRAY_NAME: shuffles the array in place (Fisher-Yates on bash's
# RANDOM, which the caller seeds), so that drift in the machine spreads
# over every row instead of one.
shuffle() {
	local -n _a=$1
	local i j t
	for ((i = ${#_a[@]} - 1; i > 0; i--)); do
		j=$((RANDOM % (i + 1)))
		t=${_a[i]}
		_a[i]=${_a[j]}
		_a[j]=$t
	done
}

pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo 'not installed'; }

# One line about the machine, for a report.
machine_line() {
	printf '%s CPUs, %s, kernel %s, Debian %s, glibc %s, %s' "$(nproc)" \
		"$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(uname -r)" \
		"$(cat /etc/debian_version)" "$(pkg_version libc6)" "$(${CC:-cc} --version | head -1)"
}

# build_c SOURCE EXE COMPILER [FLAGS...]: builds EXE from SOURCE unless it
# is newer already (the scripts' own `note` says so).
build_c() {
	local src=$1 exe=$2
	shift 2
	if [ ! -x "$exe" ] || [ "$src" -nt "$exe" ]; then
		note "building $exe"
		mkdir -p "$(dirname "$exe")"
		"$@" -o "$exe" "$src"
	fi
}

# write_block RESULTS BEGIN END BLOCKFILE: puts BLOCKFILE between the lines
# BEGIN and END of RESULTS (the text around them is left alone), or, if
# RESULTS has no such markers, appends them with the block.
write_block() {
	local results=$1 begin=$2 end=$3 block=$4
	[ -f "$results" ] || printf '# Benchmark results\n' >"$results"
	if grep -qF -- "$begin" "$results" && grep -qF -- "$end" "$results"; then
		awk -v b="$begin" -v e="$end" -v f="$block" '
			$0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
			$0 == e { skip = 0 }
			!skip' "$results" >"$results.new.$$"
	else
		{ cat "$results"; echo; echo "$begin"; cat "$block"; echo "$end"; } >"$results.new.$$"
	fi
	mv "$results.new.$$" "$results"
}

# awk functions for medians (mawk has no asort): a small insertion sort.
# shellcheck disable=SC2034 # used by the callers
AWK_MEDIAN='
	function sort(a, n,    i, j, v) {
		for (i = 2; i <= n; i++) {
			v = a[i]
			for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]
			a[j + 1] = v
		}
	}
	function median(a, n) {
		sort(a, n)
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
'
