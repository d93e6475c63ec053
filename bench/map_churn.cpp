// map_churn: the C++ workload of bench/realprog. A std::map<std::string,
// std::string> and a std::vector<std::string> churned for N rounds: keys
// from a fixed LCG (the same run every time), values grown by appends,
// entries erased and re-inserted, short-lived temporaries built and
// dropped. Every std::string longer than 15 bytes and every map node is a
// malloc through libstdc++'s operator new, so the allocator (and whatever
// is preloaded over it) is on the hot path. Prints a checksum of the final
// contents, which must not depend on the allocator or profiler.
//
// usage: map_churn N   (N = rounds; ~1 s per 400000 on one core)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

static uint64_t state = 88172645463325252ULL;
static uint64_t next()
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 400000;
	std::map<std::string, std::string> m;
	std::vector<std::string> recent;
	uint64_t sum = 0;
	for (long i = 0; i < n; i++) {
		uint64_t r = next();
		std::string key = "key:" + std::to_string(r % 200000) + ":suffix-long-enough";
		switch (r >> 60) {
		case 0:
		case 1:
		case 2: {
			auto it = m.find(key);
			if (it != m.end())
				m.erase(it);
			break;
		}
		default: {
			std::string &v = m[key];
			v += std::to_string(i);
			if (v.size() > 200)
				v.assign(v, v.size() - 40, 40);
			break;
		}
		}
		recent.push_back(key + "/" + std::to_string(r & 0xffff));
		if (recent.size() > 1000) {
			for (const auto &s : recent)
				sum += s.size();
			recent.clear();
		}
	}
	for (const auto &kv : m) {
		for (unsigned char c : kv.first)
			sum = sum * 31 + c;
		for (unsigned char c : kv.second)
			sum = sum * 131 + c;
	}
	printf("map_churn %ld rounds, %zu keys, checksum %016llx\n", n, m.size(),
	       (unsigned long long)sum);
	return 0;
}
