/*
 * tests/interpose/kernel_lib.c — libkslab_test_kernel.so, a shared library
 * that defines functions named like kslab's 2.4 API (kmalloc, vmalloc,
 * find_vma, mm_alloc), with its own meaning, as a kernel-module emulator or
 * a driver library might.  Its own calls to them are ordinary calls through
 * the PLT (default visibility, built without -Bsymbolic), so the dynamic
 * linker binds them to the first definition in the process's global scope:
 * if a preloaded kslab exported these names, the library's calls would land
 * in kslab.  kernlib_selftest() says whether they reached the library's own
 * definitions.
 */
#include <stddef.h>
#include <stdlib.h>

/* All zeros and large: should kslab's find_vma() get this "mm", it reads
 * an empty address space instead of running off the end. */
struct kl_mm {
    char pad[8192];
};
struct kl_vma {
    unsigned long start, end;
};

static struct kl_mm kl_the_mm;
static struct kl_vma kl_the_vma = {0, 4096};
static char kl_arena[4][64];
static char kl_vmarena[4096];
static unsigned kl_calls;

/* The library's own kmalloc: one of four static buffers. */
void *kmalloc(size_t size, int flags)
{
    (void)flags;
    kl_calls++;
    return size <= sizeof(kl_arena[0]) ? kl_arena[kl_calls % 4] : NULL;
}

void *vmalloc(unsigned long size)
{
    kl_calls++;
    return size <= sizeof(kl_vmarena) ? kl_vmarena : NULL;
}

struct kl_mm *mm_alloc(void)
{
    kl_calls++;
    return &kl_the_mm;
}

struct kl_vma *find_vma(struct kl_mm *mm, unsigned long addr)
{
    kl_calls++;
    return mm == &kl_the_mm && addr < kl_the_vma.end ? &kl_the_vma : NULL;
}

static int kl_in(const void *p, const void *base, size_t size)
{
    return (const char *)p >= (const char *)base &&
           (const char *)p < (const char *)base + size;
}

/*
 * Calls the four functions as any code of the library would, and returns
 * a bit for each one that did not answer as the library's own: 1 kmalloc,
 * 2 vmalloc, 4 mm_alloc, 8 find_vma.  Each call is checked on its own.
 * An answer of kslab's (a real kmalloc block, a real mm_struct) sets the
 * bit without crashing: the library checks pointers by address, never
 * through them, and kslab's find_vma reads kl_the_mm as an empty mm.
 */
int kernlib_selftest(void)
{
    int bad = 0;
    unsigned before = kl_calls;
    void *p = kmalloc(16, 0);
    if (!kl_in(p, kl_arena, sizeof(kl_arena)) || kl_calls != before + 1)
        bad |= 1;
    before = kl_calls;
    void *v = vmalloc(100);
    if (v != (void *)kl_vmarena || kl_calls != before + 1)
        bad |= 2;
    before = kl_calls;
    struct kl_mm *mm = mm_alloc();
    if (mm != &kl_the_mm || kl_calls != before + 1)
        bad |= 4;
    before = kl_calls;
    if (find_vma(&kl_the_mm, 10) != &kl_the_vma || kl_calls != before + 1)
        bad |= 8;
    return bad;
}

/* The malloc this library's code calls (through its GOT). */
void *kernlib_malloc_addr(void)
{
    return (void *)malloc;
}

/* A block from the process's malloc, allocated by the library's code. */
void *kernlib_malloc(size_t size)
{
    return malloc(size);
}
