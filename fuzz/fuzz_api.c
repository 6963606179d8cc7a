/*
 * fuzz/fuzz_api.c — the libFuzzer target: one input is a program of byte
 * opcodes run against kslab's public API, with a shadow model of every live
 * object so that contents and invariants are checked after every step.
 *
 * What it drives: kmem_cache_create/alloc/free/shrink/destroy, kmalloc/
 * kfree/ksize (normal and DMA), __get_free_pages/free_pages, the malloc
 * family when the interposer is built in (KSLAB_FUZZ_MALLOC: fuzz_malloc.h
 * renames kslab's exported malloc & co so they do not clash with the
 * sanitizer's), and the address-space emulator (do_mmap/do_munmap/
 * sys_mprotect/sys_brk/sys_mlock/mm_fork/mmput and reads and writes through
 * mm_host, which take real faults).
 *
 * Shadow model: every object is filled with a byte derived from its slot and
 * a generation counter and checked in full before it is freed or resized.
 * User memory of an mm is checked through "probes": a (user address, value)
 * pair written into a private mapping, dropped when the range is unmapped or
 * replaced, copied to the child by mm_fork (copy-on-write must keep both
 * sides' values apart).  Writes to shared mappings are checked at once.
 *
 * After every step: slab_check_cache() of the caches touched,
 * vm_check_mm() of the mms touched; vm_check_zones() every 16 steps and at
 * the end.  At the end of an input everything is freed and every cache must
 * be back to the number of objects in use it had before the first input (no
 * leak across inputs: vmas, mms, page tables, off-slab management).
 *
 * State is global and single-threaded; nothing is allocated with the host
 * malloc.  Inputs are independent: each one starts and ends empty.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <kslab/kslab.h>

#include "slab/slab_internal.h"
#include "vm/mm/mm.h"
#include "vm/frames/page.h"

#ifdef KSLAB_FUZZ_MALLOC
#include "fuzz/fuzz_malloc.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond, ...)                                                    \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_api: check failed: %s: ", #cond);            \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* ---- input reader ---- */

struct input {
    const uint8_t *p, *end;
};

static unsigned int in_u8(struct input *in)
{
    return in->p < in->end ? *in->p++ : 0;
}

static unsigned int in_u16(struct input *in)
{
    unsigned int lo = in_u8(in);
    return lo | (in_u8(in) << 8);
}

/* ---- shadow of objects ---- */

#define NCACHES 4
#define NCOBJ 32
#define NKOBJ 64
#define NPAGES 8
#define NMOBJ 64

struct obj {
    unsigned char *p;
    size_t size;
    unsigned char fill;
};

struct ucache {
    kmem_cache_t *c;
    size_t size;
    unsigned long flags;
    int ctor;
    struct obj o[NCOBJ];
};

static struct ucache ucaches[NCACHES];
static struct obj kobj[NKOBJ];
static int kobj_dma[NKOBJ];
static struct obj pages[NPAGES]; /* size = order */
static struct obj mobj[NMOBJ];
static unsigned int gen;
static unsigned int cache_serial;

static unsigned char next_fill(void)
{
    gen = gen * 1103515245u + 12345u;
    return (unsigned char)((gen >> 16) | 1);
}

static void fill(struct obj *o)
{
    o->fill = next_fill();
    memset(o->p, o->fill, o->size);
}

static void check(const struct obj *o, const char *what)
{
    static unsigned char ref[4096];
    if (ref[0] != o->fill)
        memset(ref, o->fill, sizeof ref);
    for (size_t off = 0; off < o->size; off += sizeof ref) {
        size_t n = o->size - off < sizeof ref ? o->size - off : sizeof ref;
        if (memcmp(o->p + off, ref, n) == 0)
            continue;
        for (size_t i = off; i < off + n; i++)
            FZ_CHECK(o->p[i] == o->fill,
                     "%s %p byte %zu of %zu is %#x, not %#x", what,
                     (void *)o->p, i, o->size, o->p[i], o->fill);
    }
}

#define CTOR_BYTE 0xc7

static void fz_ctor(void *objp, kmem_cache_t *c, unsigned long flags)
{
    (void)flags;
    memset(objp, CTOR_BYTE, kmem_cache_size(c));
}

static void fz_dtor(void *objp, kmem_cache_t *c, unsigned long flags)
{
    (void)flags;
    /* the user gives objects back as constructed */
    const unsigned char *b = objp;
    for (unsigned int i = 0; i < kmem_cache_size(c); i++)
        FZ_CHECK(b[i] == CTOR_BYTE, "dtor: object %p byte %u not constructed",
                 objp, i);
}

/* ---- user caches ---- */

static void op_cache_create(struct input *in)
{
    struct ucache *u = &ucaches[in_u8(in) % NCACHES];
    if (u->c)
        return;
    static const unsigned int sizes[] = {1,   8,   24,   32,   48,   100,
                                         200, 512, 1000, 4096, 5000, 40000};
    unsigned int sel = in_u8(in);
    u->size = sizes[sel % 12] + (sel >> 4);
    unsigned int f = in_u8(in);
    u->flags = 0;
    if (f & 1)
        u->flags |= SLAB_HWCACHE_ALIGN;
    if (f & 2)
        u->flags |= SLAB_POISON;
    if (f & 4)
        u->flags |= SLAB_RED_ZONE;
    if (f & 8)
        u->flags |= SLAB_CACHE_DMA;
    if (f & 16)
        u->flags |= SLAB_NO_REAP;
    u->ctor = (f & 32) && !(u->flags & SLAB_POISON);
    char name[32];
    snprintf(name, sizeof name, "fuzz-%u", cache_serial++);
    u->c = kmem_cache_create(name, u->size, 0, u->flags, u->ctor ? fz_ctor : 0,
                             u->ctor && (f & 64) ? fz_dtor : 0);
    FZ_CHECK(u->c, "kmem_cache_create(%s, %zu, %#lx): errno %d", name, u->size,
             u->flags, errno);
    FZ_CHECK(kmem_cache_size(u->c) >= u->size, "kmem_cache_size %u < %zu",
             kmem_cache_size(u->c), u->size);
}

static void ucache_free(struct ucache *u, struct obj *o)
{
    check(o, "cache object");
    if (u->ctor)
        memset(o->p, CTOR_BYTE, o->size);
    kmem_cache_free(u->c, o->p);
    o->p = NULL;
}

static void op_cache_alloc(struct input *in)
{
    struct ucache *u = &ucaches[in_u8(in) % NCACHES];
    struct obj *o = &u->o[in_u8(in) % NCOBJ];
    if (!u->c)
        return;
    if (o->p) {
        ucache_free(u, o);
        return;
    }
    o->p = kmem_cache_alloc(u->c,
                            (u->flags & SLAB_CACHE_DMA) ? GFP_DMA : GFP_KERNEL);
    FZ_CHECK(o->p, "kmem_cache_alloc(%zu)", u->size);
    FZ_CHECK(((uintptr_t)o->p & 7) == 0, "misaligned %p", (void *)o->p);
    if ((u->flags & SLAB_CACHE_DMA))
        FZ_CHECK(vm_addr_is_dma(o->p), "DMA object %p", (void *)o->p);
    o->size = u->size;
    if (u->ctor) {
        o->fill = CTOR_BYTE;
        check(o, "constructed object");
    }
    fill(o);
}

static int ucache_destroy(struct ucache *u)
{
    for (int i = 0; i < NCOBJ; i++)
        if (u->o[i].p)
            ucache_free(u, &u->o[i]);
    int r = kmem_cache_destroy(u->c);
    FZ_CHECK(r == 0, "kmem_cache_destroy of an empty cache: %d", r);
    u->c = NULL;
    return r;
}

static void op_cache_shrink_destroy(struct input *in)
{
    struct ucache *u = &ucaches[in_u8(in) % NCACHES];
    unsigned int how = in_u8(in);
    if (!u->c)
        return;
    if (how & 1) {
        ucache_destroy(u);
        return;
    }
    int live = 0;
    for (int i = 0; i < NCOBJ; i++)
        live += u->o[i].p != NULL;
    int r = kmem_cache_shrink(u->c);
    if (!live)
        FZ_CHECK(r == 0, "kmem_cache_shrink with no object: %d", r);
    if (how & 2) {
        /* a busy cache refuses to go, and stays usable */
        if (live)
            FZ_CHECK(kmem_cache_destroy(u->c) != 0, "destroyed a busy cache");
    }
}

/* ---- kmalloc, pages ---- */

static size_t pick_size(struct input *in, size_t max)
{
    unsigned int k = in_u8(in);
    unsigned int v = in_u16(in);
    size_t s;
    switch (k & 3) {
    case 0:
        s = v & 127;
        break;
    case 1:
        s = v & 4095;
        break;
    case 2:
        s = (size_t)v * ((k >> 2) + 1);
        break;
    default:
        s = (size_t)1 << ((k >> 2) % 18); /* powers of two up to 128 KiB */
        if (k & 0x80)
            s += (v & 15) - 8;
    }
    return s > max ? max : s;
}

static void op_kmalloc(struct input *in)
{
    unsigned int slot = in_u8(in) % NKOBJ;
    struct obj *o = &kobj[slot];
    if (o->p) {
        check(o, "kmalloc object");
        FZ_CHECK(ksize(o->p) >= o->size, "ksize %zu < %zu", ksize(o->p),
                 o->size);
        kfree(o->p);
        o->p = NULL;
        return;
    }
    unsigned int sel = in_u8(in);
    size_t size = pick_size(in, 140000);
    int dma = sel & 1;
    void *p = kmalloc(size, dma ? GFP_DMA : GFP_KERNEL);
    if (size > 131072) {
        FZ_CHECK(!p, "kmalloc(%zu) above the largest cache", size);
        return;
    }
    FZ_CHECK(p, "kmalloc(%zu): errno %d", size, errno);
    FZ_CHECK(ksize(p) >= size, "ksize %zu < %zu", ksize(p), size);
    if (dma)
        FZ_CHECK(vm_addr_is_dma(p), "GFP_DMA object %p", p);
    o->p = p;
    o->size = size;
    kobj_dma[slot] = dma;
    fill(o);
}

static unsigned int order_of(const struct obj *o)
{
    unsigned int order = 0;
    while ((PAGE_SIZE << order) < o->size)
        order++;
    return order;
}

static void op_pages(struct input *in)
{
    struct obj *o = &pages[in_u8(in) % NPAGES];
    unsigned int order = in_u8(in) % 6;
    if (o->p) {
        check(o, "page block");
        free_pages((unsigned long)o->p, order_of(o));
        o->p = NULL;
        return;
    }
    unsigned long a = __get_free_pages(GFP_KERNEL, order);
    FZ_CHECK(a, "__get_free_pages(order %u)", order);
    FZ_CHECK((a & ((PAGE_SIZE << order) - 1)) == 0, "block %#lx not aligned",
             a);
    o->p = (unsigned char *)a;
    o->size = PAGE_SIZE << order;
    fill(o);
}

/* ---- the malloc family ---- */

#ifdef KSLAB_FUZZ_MALLOC
static void op_malloc(struct input *in)
{
    struct obj *o = &mobj[in_u8(in) % NMOBJ];
    unsigned int how = in_u8(in);
    size_t size = pick_size(in, 300000);
    if (how & 0x80)
        size = (size_t)in_u8(in) << 12; /* large blocks, up to 1 MiB */
    if (o->p && (how & 3) == 3) {
        check(o, "malloc block");
        void *n = fz_realloc(o->p, size);
        if (size == 0) {
            FZ_CHECK(!n, "realloc(p, 0) returned %p", n);
            o->p = NULL;
            return;
        }
        FZ_CHECK(n, "realloc(%zu)", size);
        o->p = n;
        size_t keep = size < o->size ? size : o->size;
        o->size = keep;
        check(o, "realloc'ed block");
        o->size = size;
        fill(o);
        return;
    }
    if (o->p) {
        check(o, "malloc block");
        FZ_CHECK(fz_malloc_usable_size(o->p) >= o->size, "usable size");
        fz_free(o->p);
        o->p = NULL;
        return;
    }
    void *p;
    switch (how & 3) {
    case 0:
        p = fz_malloc(size);
        break;
    case 1: {
        size_t n = (how >> 2) & 7;
        p = fz_calloc(n, size / 8);
        size = n * (size / 8);
        for (size_t i = 0; p && i < size; i++)
            FZ_CHECK(((unsigned char *)p)[i] == 0, "calloc byte %zu", i);
        break;
    }
    case 2: {
        size_t align = (size_t)8 << ((how >> 2) % 12); /* 8 … 16 KiB */
        int r = fz_posix_memalign(&p, align, size);
        FZ_CHECK(r == 0, "posix_memalign(%zu, %zu): %d", align, size, r);
        FZ_CHECK(((uintptr_t)p & (align - 1)) == 0, "misaligned %p for %zu", p,
                 align);
        break;
    }
    default:
        p = fz_realloc(NULL, size);
    }
    if (!p) {
        FZ_CHECK(size == 0 && (how & 3) == 1, "allocation of %zu failed", size);
        return;
    }
    FZ_CHECK(((uintptr_t)p & 15) == 0, "malloc'ed %p not 16-aligned", p);
    FZ_CHECK(fz_malloc_usable_size(p) >= size, "usable %zu < %zu",
             fz_malloc_usable_size(p), size);
    o->p = p;
    o->size = size;
    fill(o);
}
#endif

/* ---- address spaces ---- */

#define NMM 4
#define NREG 8
#define NPROBE 64
#define MAXREG_PAGES 16

struct probe {
    unsigned long addr, val;
};

struct fmm {
    struct mm_struct *mm;
    unsigned long reg[NREG], reg_len[NREG]; /* what do_mmap returned */
    struct probe pr[NPROBE];
    int npr;
};

static struct fmm mms[NMM];
static unsigned long probe_serial;

static void drop_probes(struct fmm *m, unsigned long start, unsigned long end)
{
    for (int i = 0; i < m->npr;)
        if (m->pr[i].addr >= start && m->pr[i].addr < end)
            m->pr[i] = m->pr[--m->npr];
        else
            i++;
}

static struct vm_area_struct *vma_at(struct fmm *m, unsigned long a)
{
    struct vm_area_struct *v = find_vma(m->mm, a);
    return v && v->vm_start <= a ? v : NULL;
}

static void check_probes(struct fmm *m)
{
    for (int i = 0; i < m->npr; i++) {
        struct vm_area_struct *v = vma_at(m, m->pr[i].addr);
        FZ_CHECK(v, "probe %#lx lost its vma", m->pr[i].addr);
        if (!(v->vm_flags & VM_READ))
            continue;
        unsigned long got =
            *(volatile unsigned long *)mm_host(m->mm, m->pr[i].addr);
        FZ_CHECK(got == m->pr[i].val, "mm %p at %#lx: %#lx, not %#lx",
                 (void *)m->mm, m->pr[i].addr, got, m->pr[i].val);
    }
}

static void mm_done(struct fmm *m)
{
    vm_check_mm(m->mm);
    check_probes(m);
}

static struct fmm *pick_mm(struct input *in, int create)
{
    struct fmm *m = &mms[in_u8(in) % NMM];
    if (!m->mm && create) {
        m->mm = mm_alloc();
        FZ_CHECK(m->mm, "mm_alloc");
        m->npr = 0;
        memset(m->reg, 0, sizeof m->reg);
    }
    return m->mm ? m : NULL;
}

static void op_mmap(struct input *in)
{
    struct fmm *m = pick_mm(in, 1);
    unsigned int r = in_u8(in) % NREG;
    unsigned int how = in_u8(in);
    unsigned long len = (in_u8(in) % MAXREG_PAGES + 1) * PAGE_SIZE;
    if (how & 0x80)
        len -= in_u8(in); /* not page-aligned: rounded up */
    unsigned long prot = (how & 1) ? PROT_READ : PROT_READ | PROT_WRITE;
    unsigned long flags =
        MAP_ANONYMOUS | ((how & 2) ? MAP_SHARED : MAP_PRIVATE);
    unsigned long addr = 0;
    if ((how & 4) && m->reg[r]) {
        addr = m->reg[r] + (in_u8(in) % 4) * PAGE_SIZE; /* over a region */
        flags |= MAP_FIXED;
    }
    unsigned long a = do_mmap(m->mm, -1, addr, len, prot, flags, 0);
    if (IS_ERR_VALUE(a)) {
        FZ_CHECK(a == (unsigned long)-ENOMEM, "do_mmap: %ld", (long)a);
        mm_done(m);
        return;
    }
    FZ_CHECK((a & ~PAGE_MASK) == 0 && a + len <= TASK_SIZE, "do_mmap %#lx", a);
    if (flags & MAP_FIXED)
        FZ_CHECK(a == addr, "MAP_FIXED at %#lx gave %#lx", addr, a);
    drop_probes(m, a, a + PAGE_ALIGN(len));
    m->reg[r] = a;
    m->reg_len[r] = PAGE_ALIGN(len);
    struct vm_area_struct *v = vma_at(m, a);
    FZ_CHECK(v && v->vm_end >= a + PAGE_ALIGN(len), "new mapping %#lx", a);
    mm_done(m);
}

static unsigned long pick_addr(struct input *in, struct fmm *m)
{
    unsigned int r = in_u8(in) % NREG;
    unsigned long base = m->reg[r] ? m->reg[r] : m->mm->start_brk;
    return base + (in_u8(in) % (MAXREG_PAGES + 2)) * PAGE_SIZE;
}

static void op_munmap(struct input *in)
{
    struct fmm *m = pick_mm(in, 0);
    if (!m)
        return;
    unsigned long a = pick_addr(in, m);
    unsigned long len = (in_u8(in) % 8 + 1) * PAGE_SIZE;
    int r = do_munmap(m->mm, a, len);
    FZ_CHECK(r == 0, "do_munmap(%#lx, %lu): %d", a, len, r);
    drop_probes(m, a, a + len);
    FZ_CHECK(!vma_at(m, a) && !vma_at(m, a + len - 1), "still mapped at %#lx",
             a);
    mm_done(m);
}

static void op_mprotect(struct input *in)
{
    struct fmm *m = pick_mm(in, 0);
    if (!m)
        return;
    unsigned long a = pick_addr(in, m);
    unsigned long len = (in_u8(in) % 8 + 1) * PAGE_SIZE;
    static const unsigned long prots[] = {
        PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC};
    unsigned long prot = prots[in_u8(in) & 3];
    int r = sys_mprotect(m->mm, a, len, prot);
    FZ_CHECK(r == 0 || r == -ENOMEM || r == -EACCES, "sys_mprotect: %d", r);
    if (r == 0) {
        for (unsigned long p = a; p < a + len; p += PAGE_SIZE) {
            struct vm_area_struct *v = vma_at(m, p);
            FZ_CHECK(v, "mprotect'ed page %#lx has no vma", p);
            FZ_CHECK(!!(v->vm_flags & VM_WRITE) == !!(prot & PROT_WRITE),
                     "vma flags %#lx after mprotect %#lx", v->vm_flags, prot);
        }
    }
    mm_done(m);
}

static void op_brk(struct input *in)
{
    struct fmm *m = pick_mm(in, 1);
    unsigned long cur = sys_brk(m->mm, 0);
    long delta = ((long)(in_u8(in) % 64) - 24) * 1000;
    unsigned long want = cur + delta;
    unsigned long got = sys_brk(m->mm, want);
    if (got == want && delta < 0)
        drop_probes(m, PAGE_ALIGN(want), PAGE_ALIGN(cur));
    FZ_CHECK(got == want || got == cur, "sys_brk(%#lx) from %#lx gave %#lx",
             want, cur, got);
    FZ_CHECK(sys_brk(m->mm, 0) == got, "brk moved");
    mm_done(m);
}

static void op_write(struct input *in)
{
    struct fmm *m = pick_mm(in, 0);
    if (!m)
        return;
    unsigned long a = pick_addr(in, m) + (in_u8(in) & 0xf8) * 8;
    struct vm_area_struct *v = vma_at(m, a);
    if (!v || !(v->vm_flags & VM_WRITE) || !(v->vm_flags & VM_READ))
        return;
    unsigned long val = ++probe_serial * 0x9E3779B97F4A7C15UL;
    *(volatile unsigned long *)mm_host(m->mm, a) = val;
    FZ_CHECK(*(volatile unsigned long *)mm_host(m->mm, a) == val,
             "read back at %#lx", a);
    if (v->vm_flags & VM_SHARED) {
        /* other mms may share the page: drop what they knew of it */
        for (int i = 0; i < NMM; i++)
            if (mms[i].mm)
                drop_probes(&mms[i], a, a + 1);
    } else {
        drop_probes(m, a, a + 1);
        if (m->npr < NPROBE)
            m->pr[m->npr++] = (struct probe){a, val};
    }
    mm_done(m);
}

static void op_mlock(struct input *in)
{
    struct fmm *m = pick_mm(in, 0);
    if (!m)
        return;
    unsigned long a = pick_addr(in, m);
    unsigned long len = (in_u8(in) % 4 + 1) * PAGE_SIZE;
    int r =
        (in_u8(in) & 1) ? sys_munlock(m->mm, a, len) : sys_mlock(m->mm, a, len);
    FZ_CHECK(r == 0 || r == -ENOMEM || r == -EAGAIN, "mlock/munlock: %d", r);
    mm_done(m);
}

static void op_fork(struct input *in)
{
    struct fmm *m = pick_mm(in, 0);
    struct fmm *c = &mms[in_u8(in) % NMM];
    if (!m || c == m)
        return;
    if (c->mm) {
        check_probes(c);
        mmput(c->mm);
    }
    c->mm = mm_fork(m->mm);
    FZ_CHECK(c->mm, "mm_fork");
    memcpy(c->reg, m->reg, sizeof c->reg);
    memcpy(c->reg_len, m->reg_len, sizeof c->reg_len);
    memcpy(c->pr, m->pr, sizeof c->pr);
    c->npr = m->npr;
    mm_done(m);
    mm_done(c);
}

static void op_mmput(struct input *in)
{
    struct fmm *m = pick_mm(in, 0);
    if (!m)
        return;
    check_probes(m);
    mmput(m->mm);
    m->mm = NULL;
    m->npr = 0;
    for (int i = 0; i < NMM; i++)
        if (mms[i].mm)
            check_probes(&mms[i]);
}

/* ---- end of an input: everything back ---- */

#define MAX_SEEN 1024
static kmem_cache_t *seen[MAX_SEEN];
static unsigned long seen_inuse[MAX_SEEN];
static int nseen;
static kmem_cache_t *chain[MAX_SEEN];
static int nchain;

static void collect(FILE *out, kmem_cache_t *c)
{
    (void)out;
    if (nchain < MAX_SEEN)
        chain[nchain++] = c;
}

/* Shrinks every cache and returns nothing; fills chain[]. */
static void shrink_all(void)
{
    slab_drain_self();
    for (int pass = 0; pass < 3; pass++) {
        nchain = 0;
        slab_for_each_cache(collect, NULL);
        for (int i = 0; i < nchain; i++)
            if (chain[i] != &cache_cache)
                kmem_cache_shrink(chain[i]);
    }
}

/* In use per cache, after a full shrink: the same after every input. */
static void check_no_leak(void)
{
    shrink_all();
    for (int i = 0; i < nchain; i++) {
        kmem_cache_t *c = chain[i];
        unsigned long inuse = slab_check_cache(c);
        if (c == &cache_cache)
            continue;
        int j;
        for (j = 0; j < nseen; j++)
            if (seen[j] == c)
                break;
        if (j == nseen) {
            FZ_CHECK(nseen < MAX_SEEN, "too many caches");
            seen[nseen] = c;
            seen_inuse[nseen++] = inuse;
            continue;
        }
        if (inuse != seen_inuse[j])
            kmem_slabinfo(stderr);
        FZ_CHECK(inuse == seen_inuse[j],
                 "cache `%s': %lu objects in use after an input, %lu before",
                 c->name, inuse, seen_inuse[j]);
    }
}

static void cleanup(void)
{
    for (int i = 0; i < NCACHES; i++)
        if (ucaches[i].c)
            ucache_destroy(&ucaches[i]);
    for (int i = 0; i < NKOBJ; i++)
        if (kobj[i].p) {
            check(&kobj[i], "kmalloc object");
            kfree(kobj[i].p);
            kobj[i].p = NULL;
        }
    for (int i = 0; i < NPAGES; i++)
        if (pages[i].p) {
            check(&pages[i], "page block");
            free_pages((unsigned long)pages[i].p, order_of(&pages[i]));
            pages[i].p = NULL;
        }
    for (int i = 0; i < NMOBJ; i++)
        if (mobj[i].p) {
            check(&mobj[i], "malloc block");
#ifdef KSLAB_FUZZ_MALLOC
            fz_free(mobj[i].p);
#endif
            mobj[i].p = NULL;
        }
    for (int i = 0; i < NMM; i++)
        if (mms[i].mm) {
            mm_done(&mms[i]);
            mmput(mms[i].mm);
            mms[i].mm = NULL;
            mms[i].npr = 0;
        }
    vm_check_zones();
    check_no_leak();
}

static void check_caches(void)
{
    for (int i = 0; i < NCACHES; i++)
        if (ucaches[i].c)
            slab_check_cache(ucaches[i].c);
}

/* Touches every permanent cache once from this thread (kmalloc sizes,
 * mm_struct, vm_area_struct, pgtable). */
static void warm_up(void)
{
    /* every size class, intermediate ones included */
    for (size_t n = 16; n <= 131072; n += n / 32 > 16 ? n / 32 : 16) {
        kfree(kmalloc(n, GFP_KERNEL));
        kfree(kmalloc(n, GFP_DMA));
    }
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, -1, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, 0);
    FZ_CHECK(!IS_ERR_VALUE(a), "warm-up mmap");
    *(volatile unsigned long *)mm_host(mm, a) = 1;
    struct mm_struct *c = mm_fork(mm);
    *(volatile unsigned long *)mm_host(c, a) = 2;
    mmput(c);
    mmput(mm);
#ifdef KSLAB_FUZZ_MALLOC
    /* the malloc path's own (intermediate) size classes */
    for (size_t n = 16; n <= 131072; n += n / 32 > 16 ? n / 32 : 16)
        fz_free(fz_malloc(n));
    fz_free(fz_malloc(1 << 20));
#endif
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int baseline;
    if (!baseline) {
        /* first call: the state every input must return to, once the
         * lazily made per-thread arrays of the permanent caches exist */
        kmem_cache_init();
        warm_up();
        vm_check_zones();
        check_no_leak();
        baseline = 1;
    }
    struct input in = {data, data + size};
    unsigned int steps = 0;
    while (in.p < in.end) {
        unsigned int op = in_u8(&in);
        switch (op % 16) {
        case 0:
            op_cache_create(&in);
            break;
        case 1:
        case 2:
            op_cache_alloc(&in);
            break;
        case 3:
            op_cache_shrink_destroy(&in);
            break;
        case 4:
        case 5:
            op_kmalloc(&in);
            break;
        case 6:
            op_pages(&in);
            break;
        case 7:
#ifdef KSLAB_FUZZ_MALLOC
            op_malloc(&in);
#else
            op_kmalloc(&in);
#endif
            break;
        case 8:
            op_mmap(&in);
            break;
        case 9:
            op_munmap(&in);
            break;
        case 10:
            op_mprotect(&in);
            break;
        case 11:
            op_brk(&in);
            break;
        case 12:
            op_write(&in);
            break;
        case 13:
            if (op & 0x10)
                op_mlock(&in);
            else
                op_fork(&in);
            break;
        case 14:
            op_mmput(&in);
            break;
        default:
            if (op & 0x10)
                kmem_cache_reap(GFP_KERNEL);
            else
                slab_drain_self();
        }
        check_caches();
        if ((++steps & 15) == 0)
            vm_check_zones();
    }
    cleanup();
    return 0;
}
