/*
 * vm/frames/highmem.h — ZONE_HIGHMEM: the frames of user memory that the
 * emulated address spaces (vm/mm/) map into their windows.  No direct-map
 * address; a frame is reached through the kmap of the whole memfd.
 */
#ifndef KSLAB_VM_FRAMES_HIGHMEM_H
#define KSLAB_VM_FRAMES_HIGHMEM_H

#include <stdatomic.h>

#include "vm/frames/page.h"

/*
 * User memory is a memfd of nr_frames pages ("physical RAM"), mapped whole
 * and shared at kmap so vm/ can read, zero and copy frames; frame pfn is
 * file offset pfn << PAGE_SHIFT and map[pfn] its struct page.  A used frame
 * has its bit set in the bitmap and page->count > 0.  Frame 0 is the
 * ZERO_PAGE: reserved, never freed, not reference counted.  PG_clean on a
 * free or fresh frame means its memfd page is a hole (reads as zeros), so a
 * new anonymous page needs no memset.
 */
struct vm_highmem {
    int memfd;
    char *kmap;
    struct page *map;
    unsigned long nr_frames;
    unsigned long *bitmap;
    unsigned long cursor; /* next-fit search start */
    unsigned long nr_free;
    unsigned long limit; /* frames user memory may use (vm_set_ram_pages) */
    atomic_flag lock;
};
extern struct vm_highmem vm_highmem;

/* 8 GiB of user memory (sparse: only what is resident costs host memory).
 * The userfaultfd back end (vm/mm/uffd.c) reserves frames for the holes of
 * its ranges, so scattered memory takes twice its size in frames. */
#define VM_DEFAULT_FRAMES (1UL << 21)
#define ZERO_PAGE_PFN 0UL

int vm_highmem_init(void);
/* One frame with count 1, near hint_pfn + 0 when that one is free. */
struct page *vm_frame_alloc(unsigned long hint_pfn);

/* Frees collected in runs of consecutive pfns, so one fallocate hole
 * punch returns a whole run to the host. */
struct vm_free_batch {
    unsigned long start, n;
};
void vm_frame_put(struct page *page, struct vm_free_batch *b);
void vm_free_batch_flush(struct vm_free_batch *b);

static inline unsigned long vm_frame_pfn(const struct page *page)
{
    return (unsigned long)(page - vm_highmem.map);
}
static inline struct page *vm_pfn_frame(unsigned long pfn)
{
    return &vm_highmem.map[pfn];
}
static inline void *vm_kmap(const struct page *page)
{
    return vm_highmem.kmap + (vm_frame_pfn(page) << PAGE_SHIFT);
}

/* Host fork(): the frame spinlock is taken last (lib/fork.c), and the
 * frames in use are copied for the child, which gets them under the same
 * memfd number (it warns, and shares them, when the copy failed).  The
 * child must then remap every mapping of the memfd other than kmap
 * (vm/mm's child handler, which runs after this one, does). */
void vm_highmem_fork_lock(void);
void vm_highmem_fork_unlock(int child);

#endif /* KSLAB_VM_FRAMES_HIGHMEM_H */
