/*
 * Linked into the collector that make asan builds (build/asan/): where
 * ASan, LeakSanitizer and UBSan write their reports. Built in, not taken
 * from ASAN_OPTIONS, because the shim starts private collectors with an
 * environment of its own. ASAN_LOG is build/asan/log (absolute), set by the
 * Makefile; the sanitizers add ".PID" to it. tests/asan/run fails if any
 * such file appears.
 */
const char *__asan_default_options(void);
const char *__ubsan_default_options(void);

const char *__asan_default_options(void)
{
	return "log_path=" ASAN_LOG ":detect_leaks=1:abort_on_error=1";
}

const char *__ubsan_default_options(void)
{
	return "log_path=" ASAN_LOG ":print_stacktrace=1";
}
