// fixture_cxx.cpp: C++ code for unit_symbolize, built with
// g++ -g -O2 -fPIC -shared -o build/libfixture_cxx.so. Each interesting function
// records, through fixture_note(), the return address of that call and the
// source line it is on, so the test knows exactly which function, file and
// line an address must symbolize to. The C interface is at the bottom.

#include <stdint.h>
#include <string.h>

namespace {

struct fixture_rec {
	const char *name;
	uintptr_t pc;
	int line;
};

fixture_rec recs[16];
int nrecs;
int outer_call_line;

} // namespace

// noipa: the call must stay a real call from the function under test, with
// its return address inside that function.
extern "C" __attribute__((noipa)) void fixture_note(const char *name, int line)
{
	if (nrecs < (int)(sizeof(recs) / sizeof(recs[0])))
		recs[nrecs++] = { name, (uintptr_t)__builtin_return_address(0), line };
}

namespace ns {

class Class {
public:
	int method(int x);
};

enum { METHOD_DECL_LINE = __LINE__ + 1 };
__attribute__((noipa)) int Class::method(int x)
{
	fixture_note("method", __LINE__);
	return x + 1;
}

enum { TWICE_DECL_LINE = __LINE__ + 2 };
template <typename T>
__attribute__((noipa)) T twice(T x)
{
	fixture_note("template", __LINE__);
	return x * 2;
}

// Forced inline into outer(): the note's return address lies in inner's
// code inside outer, which DWARF describes as a DW_TAG_inlined_subroutine.
static inline __attribute__((always_inline)) int inner(int x)
{
	fixture_note("inner", __LINE__);
	return x * 3;
}

__attribute__((noipa)) int outer(int x)
{
	int r = inner(x); outer_call_line = __LINE__;
	return r + 1;
}

} // namespace ns

namespace {

__attribute__((noipa)) int helper(int x)
{
	fixture_note("anon", __LINE__);
	return x - 1;
}

} // namespace

// Runs every function once so that the notes are filled in.
extern "C" int fixture_run(void)
{
	ns::Class c;

	nrecs = 0;
	return c.method(1) + ns::twice<int>(2) + ns::outer(3) + helper(4);
}

// The recorded return address for name, or 0.
extern "C" uintptr_t fixture_pc(const char *name)
{
	for (int i = 0; i < nrecs; i++)
		if (strcmp(recs[i].name, name) == 0)
			return recs[i].pc;
	return 0;
}

// The source line recorded for name, a declaration line, or 0.
extern "C" int fixture_line(const char *name)
{
	if (strcmp(name, "method_decl") == 0)
		return ns::METHOD_DECL_LINE;
	if (strcmp(name, "template_decl") == 0)
		return ns::TWICE_DECL_LINE;
	if (strcmp(name, "outer_call") == 0)
		return outer_call_line;
	for (int i = 0; i < nrecs; i++)
		if (strcmp(recs[i].name, name) == 0)
			return recs[i].line;
	return 0;
}
