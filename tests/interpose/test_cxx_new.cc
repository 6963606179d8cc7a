/*
 * tests/interpose/test_cxx_new.cc — C++ new and delete reach kslab: plain,
 * array, nothrow, sized and aligned forms (libstdc++ routes them to malloc,
 * aligned_alloc and free).  Every pointer is checked with
 * malloc_usable_size(), which aborts on a pointer kslab did not return.
 * A plain program: exit status 0 is a pass.
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <new>
#include <vector>
#include <string>
#include <map>

static int failures;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,        \
                         __LINE__, #cond);                                     \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static void ours(const void *p, size_t n, size_t align)
{
    CHECK(p != nullptr);
    CHECK(malloc_usable_size(const_cast<void *>(p)) >= n);
    CHECK((reinterpret_cast<uintptr_t>(p) & (align - 1)) == 0);
}

template <size_t A> struct alignas(A) Aligned {
    unsigned char b[A];
};

template <size_t A> static void aligned_forms()
{
    auto *one = new Aligned<A>;
    ours(one, sizeof *one, A);
    std::memset(one, 1, sizeof *one);
    delete one;
    auto *arr = new Aligned<A>[3];
    ours(arr, 3 * sizeof *arr, A);
    delete[] arr;
    auto *nt = new (std::nothrow) Aligned<A>;
    ours(nt, sizeof *nt, A);
    delete nt;
    void *raw = ::operator new(100, std::align_val_t(A));
    ours(raw, 100, A);
    ::operator delete(raw, 100, std::align_val_t(A));
}

int main()
{
    int *i = new int(42);
    ours(i, sizeof(int), 16);
    delete i;
    char *a = new char[1000];
    ours(a, 1000, 16);
    delete[] a;
    char *big = new char[5 << 20];
    ours(big, 5 << 20, 4096);
    big[(5 << 20) - 1] = 1;
    delete[] big;
    void *s = ::operator new(333);
    ours(s, 333, 16);
    ::operator delete(s, 333); /* sized delete */
    void *nt = ::operator new(77, std::nothrow);
    ours(nt, 77, 16);
    ::operator delete(nt, std::nothrow);

    /* Impossible sizes: nothrow gives nullptr, plain new throws. */
    size_t huge = (size_t)1 << 62;
    CHECK(::operator new(huge, std::nothrow) == nullptr);
    bool threw = false;
    try {
        void *p = ::operator new(huge);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw);

    aligned_forms<32>();
    aligned_forms<64>();
    aligned_forms<256>();
    aligned_forms<4096>();
    aligned_forms<65536>();
    aligned_forms<(1 << 21)>();
    aligned_forms<(4 << 20)>();

    /* The containers that real programs use. */
    std::map<std::string, std::vector<int>> m;
    for (int k = 0; k < 20000; k++)
        m[std::to_string(k * 7919 % 10007)].push_back(k);
    size_t total = 0;
    for (auto &kv : m)
        total += kv.second.size();
    CHECK(total == 20000);

    if (failures)
        std::fprintf(stderr, "%d failures\n", failures);
    return failures ? 1 : 0;
}
