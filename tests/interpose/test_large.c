/*
 * tests/interpose/test_large.c — interpose/large.c on its own (no interposer,
 * so it runs in the sanitizer build too): buddy blocks and own mappings,
 * alignment, usable size, in-place growth, realloc across the kinds, the
 * huge-mapping cache and its bound, and the answers for pointers that are
 * not large blocks.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "ktest.h"
#include "interpose/large.h"

#define KiB (1024UL)
#define MiB (1024UL * 1024UL)

static void test_buddy_block(void **s)
{
    (void)s;
    char *p = vm_large_alloc(200 * KiB, PAGE_SIZE, 1);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p & (PAGE_SIZE - 1), 0);
    assert_non_null(vm_virt_to_page(p)); /* low memory */
    assert_int_equal(vm_large_usable(p), PAGE_ALIGN(200 * KiB));
    for (size_t i = 0; i < 200 * KiB; i++)
        assert_int_equal(p[i], 0);
    memset(p, 1, 200 * KiB);
    assert_int_equal(vm_large_usable(p + PAGE_SIZE), 0);
    assert_int_equal(vm_large_free(p + PAGE_SIZE), VM_LARGE_BAD);
    assert_int_equal(vm_large_free(p), VM_LARGE_FREED);
    assert_int_equal(vm_large_free(p), VM_LARGE_BAD); /* double free */
}

static void test_huge_block(void **s)
{
    (void)s;
    size_t n = 3 * LARGE_BUDDY_MAX_PAGES * PAGE_SIZE;
    char *p = vm_large_alloc(n, PAGE_SIZE, 1);
    assert_non_null(p);
    assert_null(vm_virt_to_page(p)); /* a mapping of its own */
    assert_int_equal(vm_large_usable(p), n);
    memset(p, 2, n);
    assert_int_equal(vm_large_free(p + PAGE_SIZE), VM_LARGE_NOT_OURS);
    assert_int_equal(vm_large_free(p), VM_LARGE_FREED);
    assert_int_equal(vm_large_free(p), VM_LARGE_NOT_OURS);
    /* The same size again comes from the cache, zeroed on request. */
    char *q = vm_large_alloc(n, PAGE_SIZE, 1);
    for (size_t i = 0; i < n; i += 4096)
        assert_int_equal(q[i], 0);
    assert_int_equal(vm_large_free(q), VM_LARGE_FREED);
}

static void test_alignment(void **s)
{
    (void)s;
    for (size_t a = PAGE_SIZE; a <= 16 * MiB; a <<= 1) {
        char *p = vm_large_alloc(300 * KiB, a, 0);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p & (a - 1), 0);
        assert_true(vm_large_usable(p) >= 300 * KiB);
        memset(p, 3, 300 * KiB);
        assert_int_equal(vm_large_free(p), VM_LARGE_FREED);
    }
}

static void test_realloc_kinds(void **s)
{
    (void)s;
    size_t sizes[] = {150 * KiB, 1 * MiB,   5 * MiB, 30 * MiB,
                      2 * MiB,   300 * KiB, 9 * MiB, 140 * KiB};
    unsigned char *p = vm_large_alloc(140 * KiB, PAGE_SIZE, 0);
    size_t have = 140 * KiB;
    for (size_t i = 0; i < have; i++)
        p[i] = (unsigned char)(i * 7);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t keep = have < sizes[k] ? have : sizes[k];
        p = vm_large_realloc(p, sizes[k]);
        assert_non_null(p);
        for (size_t i = 0; i < keep; i += 61)
            assert_int_equal(p[i], (unsigned char)(i * 7));
        for (size_t i = 0; i < sizes[k]; i++)
            p[i] = (unsigned char)(i * 7);
        have = sizes[k];
    }
    assert_int_equal(vm_large_free(p), VM_LARGE_FREED);
}

static void test_grow_in_place(void **s)
{
    (void)s;
    struct vm_large_stats a, b;
    vm_large_get_stats(&a);
    char *p = vm_large_alloc(140 * KiB, PAGE_SIZE, 0);
    int same = 0;
    for (size_t n = 200 * KiB; n < 1800 * KiB; n += 100 * KiB) {
        char *q = vm_large_realloc(p, n);
        same += q == p;
        p = q;
    }
    vm_large_free(p);
    vm_large_get_stats(&b);
    assert_true(same > 0);
    assert_true(b.grow_in_place > a.grow_in_place);
}

static void test_cache_is_bounded(void **s)
{
    (void)s;
    void *v[12];
    for (int i = 0; i < 12; i++)
        v[i] = vm_large_alloc(12 * MiB, PAGE_SIZE, 0);
    for (int i = 0; i < 12; i++)
        assert_int_equal(vm_large_free(v[i]), VM_LARGE_FREED);
    struct vm_large_stats st;
    vm_large_get_stats(&st);
    assert_true(st.huge_cached <= HUGE_CACHE_SLOTS);
    assert_true(st.huge_cached_bytes <= HUGE_CACHE_MAX_BYTES);
    assert_true(st.huge_unmapped_bytes >= 12 * 12 * MiB - HUGE_CACHE_MAX_BYTES);
}

static void test_impossible_sizes(void **s)
{
    (void)s;
    errno = 0;
    assert_null(vm_large_alloc(SIZE_MAX, PAGE_SIZE, 0));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(vm_large_alloc((size_t)PTRDIFF_MAX, 4 * MiB, 0));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(vm_large_alloc(1, (size_t)1 << 62, 0));
    assert_int_equal(errno, ENOMEM);
    void *z = vm_large_alloc(0, PAGE_SIZE, 0); /* size 0: one page */
    assert_non_null(z);
    assert_int_equal(vm_large_usable(z), PAGE_SIZE);
    assert_int_equal(vm_large_free(z), VM_LARGE_FREED);
    char buf[16];
    assert_int_equal(vm_large_free(buf), VM_LARGE_NOT_OURS);
    assert_int_equal(vm_large_usable(buf), 0);
}

/* M_MMAP_THRESHOLD's knob: blocks from the threshold up are own mappings;
 * vm_large_trim() unmaps the cached ones; the high-water marks follow. */
static void test_mmap_threshold_and_trim(void **s)
{
    (void)s;
    vm_large_trim();
    size_t saved = vm_large_mmap_threshold;
    vm_large_mmap_threshold = 256 * KiB;
    char *p = vm_large_alloc(512 * KiB, PAGE_SIZE, 0);
    assert_non_null(p);
    assert_null(vm_virt_to_page(p)); /* a mapping of its own */
    char *q = vm_large_alloc(200 * KiB, PAGE_SIZE, 0);
    assert_non_null(vm_virt_to_page(q)); /* below: a buddy block */
    /* a buddy block grown past the threshold becomes a mapping */
    q = vm_large_realloc(q, 300 * KiB);
    assert_null(vm_virt_to_page(q));
    vm_large_mmap_threshold = saved;
    struct vm_large_stats st;
    vm_large_get_stats(&st);
    assert_true(st.huge_max_blocks >= 2);
    assert_true(st.huge_max_bytes >= 812 * KiB);
    assert_int_equal(vm_large_free(p), VM_LARGE_FREED);
    assert_int_equal(vm_large_free(q), VM_LARGE_FREED);
    vm_large_get_stats(&st);
    assert_int_equal(st.huge_cached, 2);
    assert_int_equal(vm_large_trim(), st.huge_cached_bytes);
    vm_large_get_stats(&st);
    assert_int_equal(st.huge_cached, 0);
    assert_int_equal(vm_large_trim(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buddy_block),
        cmocka_unit_test(test_huge_block),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_realloc_kinds),
        cmocka_unit_test(test_grow_in_place),
        cmocka_unit_test(test_cache_is_bounded),
        cmocka_unit_test(test_impossible_sizes),
        cmocka_unit_test(test_mmap_threshold_and_trim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
