/*
 * tests/programs/aligned_new.cc — a C++ program that uses aligned new for
 * its data (cache-line and page aligned nodes in standard containers) and
 * prints a checksum; run with and without kslab, the output must agree.
 */
#include <cstdint>
#include <cstdio>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

struct alignas(64) Line {
    uint64_t v[8];
};
struct alignas(4096) PageBuf {
    unsigned char b[4096];
};

int main()
{
    uint64_t sum = 0, misaligned = 0;
    std::list<Line> lines;
    std::unordered_map<uint64_t, std::unique_ptr<PageBuf>> pages;
    for (uint64_t i = 0; i < 200000; i++) {
        lines.push_back(Line{{i, i * 3, i * 5, 0, 0, 0, 0, i}});
        if (i % 100 == 0) {
            auto p = std::make_unique<PageBuf>();
            misaligned += reinterpret_cast<uintptr_t>(p.get()) & 4095;
            p->b[i % 4096] = (unsigned char)i;
            pages[i] = std::move(p);
        }
        if (lines.size() > 5000)
            lines.pop_front();
    }
    for (auto &l : lines) {
        misaligned += reinterpret_cast<uintptr_t>(&l) & 63;
        sum += l.v[0] + l.v[1] + l.v[7];
    }
    std::vector<Line *> v;
    for (int i = 0; i < 10000; i++)
        v.push_back(new Line{{(uint64_t)i}});
    for (auto *p : v) {
        misaligned += reinterpret_cast<uintptr_t>(p) & 63;
        sum += p->v[0];
        delete p;
    }
    auto *big = new PageBuf[600]();
    big[599].b[0] = 1;
    misaligned += reinterpret_cast<uintptr_t>(&big[0]) & 4095;
    delete[] big;
    std::printf("sum %llu pages %zu misaligned %llu\n", (unsigned long long)sum,
                pages.size(), (unsigned long long)misaligned);
    return misaligned != 0;
}
