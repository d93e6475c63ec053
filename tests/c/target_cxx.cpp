// C++ names and a dlopen'd library: shapes::Canvas::paint keeps 8 MiB, a
// template function keeps 4 MiB through operator new, and plugin_allocate in
// libplugin.so (argv[1], loaded then unloaded) keeps 4 MiB.
#include <dlfcn.h>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

namespace shapes {

class Canvas {
public:
	__attribute__((noinline)) void paint(int strokes);

private:
	std::vector<std::unique_ptr<char[]>> strokes_;
};

void Canvas::paint(int strokes)
{
	for (int i = 0; i < strokes; i++) {
		strokes_.emplace_back(new char[8192]);
		strokes_.back()[0] = 1;
	}
	new (std::nothrow) char[0]; // an allocation of zero bytes must not confuse anything
}

} // namespace shapes

template <typename T>
__attribute__((noinline)) std::vector<T *> *make_many(int n)
{
	auto *v = new std::vector<T *>;
	for (int i = 0; i < n; i++)
		v->push_back(new T[1024]);
	return v;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		std::fprintf(stderr, "usage: %s path/to/libplugin.so\n", argv[0]);
		return 2;
	}
	auto *canvas = new shapes::Canvas;
	canvas->paint(1024); // 8 MiB
	auto *many = make_many<double>(512); // 512 x 8 KiB = 4 MiB
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h) {
		std::fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	auto fn = reinterpret_cast<void **(*)(size_t, size_t)>(dlsym(h, "plugin_allocate"));
	void **blocks = fn(1024, 4096); // 4 MiB
	dlclose(h);
	std::printf("done %p %p %p\n", static_cast<void *>(canvas), static_cast<void *>(many),
		    static_cast<void *>(blocks));
	return 0;
}
