/*
 * tests/interpose/test_bound_calls.c — kslab's internal calls are bound
 * inside libkslab.so.  This program links libkslab.so and exports (-rdynamic)
 * its own kmalloc, kfree, kmem_cache_alloc, kmem_cache_free,
 * __get_free_pages and free_pages, which come first in the lookup order.
 * Inside kslab, malloc grows caches with __get_free_pages, a thread's
 * exit frees its page with free_pages, mm_alloc/do_mmap/faults take
 * mm_structs, vmas and page tables from kmem_cache_alloc, vmalloc calls
 * kmalloc: had those calls gone through the PLT, they would land here.
 * Linked with -Bsymbolic-functions, they do not.
 *
 * The program's definitions serve the program (its kmalloc hands out
 * blocks of a static arena); called from anywhere else they report the
 * name on stderr and end the process with status 3.
 */
#include <pthread.h>
#include <sys/mman.h>

#include <kslab/kslab.h>

#include "ktest.h"

static int program_calling; /* set around the program's own calls */
static char arena[8][64];
static unsigned arena_next;

static void hijacked(const char *name)
{
    static const char head[] = "test_bound_calls: kslab called the "
                               "program's ";
    if (write(2, head, sizeof(head) - 1) < 0 ||
        write(2, name, strlen(name)) < 0 || write(2, "()\n", 3) < 0)
        _exit(4);
    _exit(3);
}

void *kmalloc(size_t size, int flags)
{
    (void)flags;
    if (!program_calling)
        hijacked("kmalloc");
    return size <= sizeof(arena[0]) ? arena[arena_next++ % 8] : NULL;
}

void kfree(const void *p)
{
    (void)p;
    if (!program_calling)
        hijacked("kfree");
}

void *kmem_cache_alloc(kmem_cache_t *cachep, int flags)
{
    (void)cachep, (void)flags;
    hijacked("kmem_cache_alloc");
    return NULL;
}

void kmem_cache_free(kmem_cache_t *cachep, void *objp)
{
    (void)cachep, (void)objp;
    hijacked("kmem_cache_free");
}

unsigned long __get_free_pages(int gfp_mask, unsigned int order)
{
    (void)gfp_mask, (void)order;
    hijacked("__get_free_pages");
    return 0;
}

void free_pages(unsigned long addr, unsigned int order)
{
    (void)addr, (void)order;
    hijacked("free_pages");
}

/* The program's kmalloc is its own. */
static void test_program_keeps_its_kmalloc(void **s)
{
    (void)s;
    program_calling = 1;
    char *p = kmalloc(10, GFP_KERNEL);
    kfree(p);
    program_calling = 0;
    assert_true(p >= &arena[0][0] && p < &arena[0][0] + sizeof(arena));
}

/* Returns its argument when every malloc succeeded. */
static void *thread_mallocs(void *arg)
{
    for (int i = 0; i < 2000; i++) {
        void *p = malloc((size_t)i * 7 + 1);
        if (!p)
            return NULL;
        free(p);
    }
    return arg;
}

/* malloc grows caches (__get_free_pages); a thread attaches and, at its
 * exit, frees its page (free_pages); reaping frees slabs (free_pages). */
static void test_malloc_and_threads(void **s)
{
    (void)s;
    static void *blocks[4096];
    for (int i = 0; i < 4096; i++) {
        blocks[i] = malloc((size_t)(i % 64) * 512 + 8);
        assert_non_null(blocks[i]);
    }
    assert_true(ksize(blocks[0]) >= 8); /* a kslab block */
    for (int i = 0; i < 4096; i++)
        free(blocks[i]);
    static int token;
    for (int t = 0; t < 4; t++) {
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, thread_mallocs, &token), 0);
        void *ret;
        assert_int_equal(pthread_join(th, &ret), 0);
        assert_ptr_equal(ret, &token);
    }
    for (int i = 0; i < 64; i++)
        kmem_cache_reap(GFP_KERNEL);
}

/* mm_alloc, do_mmap, a fault on the page, do_munmap, mmput: mm_structs,
 * vmas and page tables from their slab caches and back. */
static void test_address_space(void **s)
{
    (void)s;
    struct mm_struct *mm = mm_alloc();
    assert_non_null(mm);
    unsigned long a = do_mmap(mm, -1, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, 0);
    assert_false(IS_ERR_VALUE(a));
    struct vm_area_struct *vma = find_vma(mm, a);
    assert_non_null(vma);
    assert_ptr_equal(vma->vm_mm, mm);
    assert_int_equal(vma->vm_start, a);
    assert_int_equal(vma->vm_end, a + 4 * PAGE_SIZE);
    assert_true(vma->vm_flags & VM_WRITE);
    char *host = mm_host(mm, a);
    assert_non_null(host);
    host[0] = 1; /* fault: a page table and a frame */
    host[3 * PAGE_SIZE] = 2;
    struct mm_stat st;
    mm_get_stat(mm, &st);
    /* 2, or the 4 of the vma when the first fault mapped its
     * neighbours too (fault-around, KSLAB_VM_FAULT_AROUND) */
    assert_true(st.rss == 2 || st.rss == 4);
    assert_int_equal(do_munmap(mm, a + PAGE_SIZE, PAGE_SIZE), 0);
    mmput(mm);
}

/* vmalloc keeps its vm_struct in a kmalloc block and its pages from
 * __get_free_pages; vfree gives both back. */
static void test_vmalloc(void **s)
{
    (void)s;
    char *v = vmalloc(3 * PAGE_SIZE);
    assert_non_null(v);
    memset(v, 5, 3 * PAGE_SIZE);
    assert_non_null(vmalloc_to_page(v + PAGE_SIZE));
    vfree(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_program_keeps_its_kmalloc),
        cmocka_unit_test(test_malloc_and_threads),
        cmocka_unit_test(test_address_space),
        cmocka_unit_test(test_vmalloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
