/*
 * vm/frames/highmem.c — ZONE_HIGHMEM: the frames of user memory.  They live in
 * a memfd ("physical RAM", VM_DEFAULT_FRAMES pages, sparse until touched),
 * which is also mapped whole at vm_highmem.kmap so that vm/ can zero, copy
 * and write back frames without going through any user window.  A bitmap
 * says which frames are in use; allocation is next-fit from a cursor, or
 * exactly the frame asked for when it is free, so consecutive user pages
 * get consecutive frames and their host mappings coalesce.  Freed frames
 * are given back to the host in runs (a hole punch per run), which also
 * makes them read as zero again (PG_clean).  At most limit frames are in
 * use at once (vm_set_ram_pages): beyond it allocation fails and the
 * caller reclaims (vmscan.c).
 *
 * Locking: vm_highmem.lock, a spinlock, guards the bitmap, the cursor and
 * nr_free; it is held for a few instructions and never while touching a
 * user window, so the SIGSEGV handler may take it; it is the last lock of
 * kslab's order (lib/fork.c).  page->count is atomic.  High memory is set
 * up lazily, at its first use, through kslab_once() (lib/init.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "lib/host.h"
#include "lib/init.h"
#include "vm/frames/highmem.h"
#include "vm/frames/os.h"

struct vm_highmem vm_highmem = {.memfd = -1, .lock = ATOMIC_FLAG_INIT};
static struct kslab_once highmem_once = KSLAB_ONCE_INIT;
static int highmem_err;

#define BITS_PER_LONG (8 * sizeof(unsigned long))

static void hm_lock(void)
{
    while (atomic_flag_test_and_set_explicit(&vm_highmem.lock,
                                             memory_order_acquire))
        kslab_host_yield();
}

static void hm_unlock(void)
{
    atomic_flag_clear_explicit(&vm_highmem.lock, memory_order_release);
}

static int test_bit(unsigned long nr)
{
    return (vm_highmem.bitmap[nr / BITS_PER_LONG] >> (nr % BITS_PER_LONG)) & 1;
}
static void set_bit(unsigned long nr)
{
    vm_highmem.bitmap[nr / BITS_PER_LONG] |= 1UL << (nr % BITS_PER_LONG);
}
static void clear_bit(unsigned long nr)
{
    vm_highmem.bitmap[nr / BITS_PER_LONG] &= ~(1UL << (nr % BITS_PER_LONG));
}

/*
 * Host fork(): user memory is a shared memfd, and a shared mapping stays
 * shared in a child, so a child would write its parent's frames and both
 * frame allocators would hand out the same frames.  So, with every vm
 * lock held (vm/mm/fork.c takes this one last), the frames in use are
 * copied into a new memfd; the child swaps it in under the same fd
 * number and remaps kmap (vm/mm then remaps every window and the vmalloc
 * range), the parent closes it.  The cost is one in-kernel copy of the
 * resident user memory per host fork (see the README), in runs of
 * frames in use that hold data (holes stay holes), each one pwrite from kmap
 * (twice as fast here as copy_file_range between the two memfds).  When the
 * copy cannot be made (out of memory), the child warns and keeps sharing.
 */
static int fork_fd = -1;

static int copy_bytes(int fd, off_t off, size_t left)
{
    return vm_os_write_at(fd, vm_highmem.kmap + off, left, off);
}

/* Frames [start, start + n) into fd: only the parts of the memfd that hold
 * data.  A hole (a frame reserved for an address that has no page yet, see
 * vm/mm/uffd.c) is not read: reading it through kmap would fill it in, and
 * a store to that address by another thread would then land without the
 * fault that makes it resident. */
static int copy_run(int fd, unsigned long start, unsigned long n)
{
    off_t off = (off_t)(start << PAGE_SHIFT);
    off_t end = (off_t)((start + n) << PAGE_SHIFT);
    while (off < end) {
        off_t data = vm_os_seek_data(vm_highmem.memfd, off, 0);
        if (data == -ENXIO)
            return 0; /* only holes from off to the end of the file */
        if (data < 0)
            return copy_bytes(fd, off, (size_t)(end - off));
        if (data >= end)
            return 0;
        off_t hole = vm_os_seek_data(vm_highmem.memfd, data, 1);
        if (hole < 0 || hole > end)
            hole = end;
        if (copy_bytes(fd, data, (size_t)(hole - data)) != 0)
            return -1;
        off = hole;
    }
    return 0;
}

/* A private copy of the frames in use, as a new memfd (-1: none). */
static int highmem_snapshot(void)
{
    struct vm_highmem *h = &vm_highmem;
    int fd = vm_os_memfd("kslab-highmem", h->nr_frames << PAGE_SHIFT);
    if (fd < 0)
        return -1;
    for (unsigned long i = 1; i < h->nr_frames;) {
        unsigned long w = h->bitmap[i / BITS_PER_LONG];
        if (!w && !(i % BITS_PER_LONG)) {
            i += BITS_PER_LONG;
            continue;
        }
        if (!test_bit(i)) {
            i++;
            continue;
        }
        unsigned long start = i;
        while (i < h->nr_frames && test_bit(i))
            i++;
        if (copy_run(fd, start, i - start) != 0)
            goto fail;
    }
    return fd;
fail:
    vm_os_close(fd);
    return -1;
}

void vm_highmem_fork_lock(void)
{
    hm_lock();
    fork_fd = vm_highmem.memfd >= 0 ? highmem_snapshot() : -1;
}

void vm_highmem_fork_unlock(int child)
{
    struct vm_highmem *h = &vm_highmem;
    if (h->memfd < 0)
        goto out;
    if (!child) {
        if (fork_fd >= 0)
            vm_os_close(fork_fd);
        goto out;
    }
    if (fork_fd < 0 || vm_os_fd_move(fork_fd, h->memfd) != 0) {
        kslab_warn("fork(): no copy of user memory for the child; its "
                   "emulated memory is shared with the parent");
        goto out;
    }
    if (!vm_os_map_shared(h->kmap, h->nr_frames << PAGE_SHIFT,
                          VM_OS_READ | VM_OS_WRITE, h->memfd, 0, 0))
        kslab_die("fork(): cannot map the child's user memory");
out:
    fork_fd = -1;
    hm_unlock(); /* a spinlock: released the same way on both sides */
}

static void highmem_setup(void)
{
    struct vm_highmem *h = &vm_highmem;
    unsigned long n = VM_DEFAULT_FRAMES;
    size_t bytes = n << PAGE_SHIFT;

    h->memfd = vm_os_memfd("kslab-highmem", bytes);
    if (h->memfd < 0)
        goto fail;
    h->kmap =
        vm_os_map_shared(NULL, bytes, VM_OS_READ | VM_OS_WRITE, h->memfd, 0, 0);
    if (!h->kmap)
        goto fail;
    h->map = vm_os_alloc(n * sizeof(struct page), 0, 1);
    h->bitmap = vm_os_alloc(n / 8, 0, 1);
    if (!h->map || !h->bitmap)
        goto fail;
    h->nr_frames = n;
    h->nr_free = n - 1;
    h->limit = n - 1;
    h->cursor = 1;
    /* Frame 0 is the ZERO_PAGE: a hole in the memfd, mapped read-only. */
    set_bit(ZERO_PAGE_PFN);
    set_page_flags(&h->map[0], (1UL << PG_highmem) | (1UL << PG_reserved));
    atomic_store(&h->map[0].count, 1);
    return;
fail:
    highmem_err = -ENOMEM;
}

int vm_highmem_init(void)
{
    kslab_once(&highmem_once, highmem_setup); /* lib/init.h */
    return highmem_err;
}

/* Under the lock: the first free frame at or after from, or nr_frames. */
static unsigned long find_free(unsigned long from)
{
    unsigned long n = vm_highmem.nr_frames;
    for (unsigned long i = from; i < n;) {
        unsigned long w = vm_highmem.bitmap[i / BITS_PER_LONG];
        if (w == ~0UL) {
            i = (i / BITS_PER_LONG + 1) * BITS_PER_LONG;
            continue;
        }
        if (!((w >> (i % BITS_PER_LONG)) & 1))
            return i;
        i++;
    }
    return n;
}

static struct page *take_frame(unsigned long pfn)
{
    struct page *page = &vm_highmem.map[pfn];
    set_bit(pfn);
    /* atomic store: vm_free_user_frames() reads it without hm_lock */
    __atomic_store_n(&vm_highmem.nr_free, vm_highmem.nr_free - 1,
                     __ATOMIC_RELAXED);
    unsigned long flags = page_flags(page);
    unsigned long clean = flags & (1UL << PG_clean);
    if (!flags)
        clean = 1UL << PG_clean; /* never used: still a hole */
    set_page_flags(page, (1UL << PG_highmem) | clean);
    page->order = 0;
    page->pins = 0;
    page->mapping = NULL;
    page->index = 0;
    atomic_store_explicit(&page->count, 1, memory_order_relaxed);
    return page;
}

struct page *vm_frame_alloc(unsigned long hint_pfn)
{
    struct vm_highmem *h = &vm_highmem;
    struct page *page = NULL;

    hm_lock();
    if (!h->nr_free || h->nr_frames - 1 - h->nr_free >= h->limit)
        goto out; /* user memory is full: the caller reclaims */
    if (hint_pfn && hint_pfn < h->nr_frames && !test_bit(hint_pfn)) {
        page = take_frame(hint_pfn);
        goto out;
    }
    unsigned long pfn = find_free(h->cursor);
    if (pfn >= h->nr_frames)
        pfn = find_free(1);
    if (pfn < h->nr_frames) {
        page = take_frame(pfn);
        h->cursor = pfn + 1;
    }
out:
    hm_unlock();
    return page;
}

/* Gives frames [start, start + n) back: a hole punch (their data goes,
 * they read as zero) and then their bits. */
static void free_run(unsigned long start, unsigned long n)
{
    struct vm_highmem *h = &vm_highmem;
    vm_os_punch_hole(h->memfd, (off_t)(start << PAGE_SHIFT), n << PAGE_SHIFT);
    hm_lock();
    for (unsigned long i = start; i < start + n; i++) {
        set_page_flags(&h->map[i], (1UL << PG_highmem) | (1UL << PG_clean));
        clear_bit(i);
    }
    __atomic_store_n(&h->nr_free, h->nr_free + n, __ATOMIC_RELAXED);
    if (start < h->cursor)
        h->cursor = start;
    hm_unlock();
}

void vm_free_batch_flush(struct vm_free_batch *b)
{
    if (b->n)
        free_run(b->start, b->n);
    b->n = 0;
}

void vm_frame_put(struct page *page, struct vm_free_batch *b)
{
    unsigned long pfn = vm_frame_pfn(page);
    if (pfn == ZERO_PAGE_PFN)
        return;
    int old = atomic_fetch_sub_explicit(&page->count, 1, memory_order_acq_rel);
    if (old > 1)
        return;
    if (old != 1)
        kslab_die("put_page(): frame %lu has count %d", pfn, old);
    if (!b) {
        free_run(pfn, 1);
        return;
    }
    if (b->n && pfn == b->start + b->n) {
        b->n++;
        return;
    }
    vm_free_batch_flush(b);
    b->start = pfn;
    b->n = 1;
}

/* alloc_pages(__GFP_HIGHMEM, order): 2^order consecutive frames, aligned. */
struct page *vm_highmem_alloc_pages(unsigned int order)
{
    struct vm_highmem *h = &vm_highmem;
    unsigned long n = 1UL << order;
    struct page *page = NULL;

    if (order >= MAX_ORDER || vm_highmem_init() != 0)
        return NULL;
    hm_lock();
    if (h->nr_frames - 1 - h->nr_free + n > h->limit) {
        hm_unlock();
        return NULL;
    }
    for (unsigned long s = n; s + n <= h->nr_frames; s += n) {
        unsigned long i;
        for (i = 0; i < n && !test_bit(s + i); i++)
            ;
        if (i < n)
            continue;
        for (i = 0; i < n; i++)
            take_frame(s + i);
        page = &h->map[s];
        page->order = order;
        break;
    }
    hm_unlock();
    return page;
}

void vm_highmem_free_pages(struct page *page, unsigned int order)
{
    struct vm_highmem *h = &vm_highmem;
    if (!h->map || page < h->map || page >= h->map + h->nr_frames ||
        vm_frame_pfn(page) == ZERO_PAGE_PFN || !PageFlag(page, PG_highmem))
        kslab_die("__free_pages(): page %p (order %u) is not a high-memory "
                  "frame",
                  (void *)page, order);
    if (atomic_fetch_sub(&page->count, 1) != 1)
        return;
    unsigned long pfn = vm_frame_pfn(page);
    for (unsigned long i = 1; i < (1UL << order); i++)
        atomic_store(&h->map[pfn + i].count, 0);
    free_run(pfn, 1UL << order);
}
