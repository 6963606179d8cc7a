/*
 * vm/mm/uaccess.c — kernel access to user memory (2.4's copy_to_user /
 * copy_from_user and map_user_kiobuf's get_user_pages): how a program
 * hands emulated memory to a system call or any code that must not fault.
 * The host kernel touching a page of a window that is not present (or a
 * COW page, for a write) fails with EFAULT instead of faulting into
 * kslab, so these walk the page tables under mmap_sem, fault each page in
 * with __handle_mm_fault first (a write breaks COW), and copy through the
 * frame's kmap — never through the window, which keeps the rule that no
 * kslab code touches a window while it holds a lock.
 */
#include <errno.h>
#include <string.h>

#include "vm/mm/mm.h"

/* The frame of addr, faulted in for write or read; NULL when the access
 * is not allowed (no vma, protection) or memory is out.  An address just
 * below a stack grows it first, as a user access there would (Linux's
 * find_extend_vma).  mmap_sem held. */
static struct page *follow_page_in(struct mm_struct *mm, unsigned long addr,
                                   int write)
{
    struct vm_area_struct *vma = __find_vma(mm, addr);
    if (!vma || (vma->vm_start > addr && vm_expand_stack(mm, vma, addr) != 0))
        return NULL;
    if (!vm_access_ok(vma, write))
        return NULL;
    for (int tries = 0; tries < 4; tries++) {
        pte_t *pte = vm_pte_lookup(mm, addr);
        /* an armed page (_PAGE_OLD, vmscan.c) is present but inaccessible
         * on the host until a fault maps it back: fault it too */
        if (pte && pte_present(*pte) &&
            !(pte_val(*pte) & (_PAGE_PROTNONE | _PAGE_OLD)) &&
            (!write || pte_write(*pte)))
            return pte_page(*pte);
        if (__handle_mm_fault(mm, vma, addr, write) <= 0)
            return NULL;
    }
    return NULL;
}

/* Copies n bytes between buf and user memory at uaddr; returns the bytes
 * not copied (0 on success), as 2.4. */
static unsigned long uaccess(struct mm_struct *mm, unsigned long uaddr,
                             void *buf, unsigned long n, int write)
{
    if (!mm || !n)
        return n;
    if (uaddr >= TASK_SIZE)
        return n;
    unsigned long left = n;
    char *p = buf;
    pthread_mutex_lock(&mm->mmap_sem);
    while (left) {
        unsigned long off = uaddr & ~PAGE_MASK;
        unsigned long chunk = PAGE_SIZE - off < left ? PAGE_SIZE - off : left;
        if (uaddr >= TASK_SIZE)
            break;
        struct page *page = follow_page_in(mm, uaddr & PAGE_MASK, write);
        if (!page)
            break;
        char *k = (char *)vm_kmap(page) + off;
        if (write)
            memcpy(k, p, chunk);
        else
            memcpy(p, k, chunk);
        p += chunk;
        uaddr += chunk;
        left -= chunk;
    }
    pthread_mutex_unlock(&mm->mmap_sem);
    return left;
}

/**
 * copy_to_user - copy @n bytes from @src into user memory of @mm at
 * @uaddr, faulting pages in (and breaking COW) as a user write would.
 * Returns the bytes not copied: 0, or what lies past the first page the
 * mm does not allow to be written.  Process context, no lock held.
 */
KSLAB_API unsigned long copy_to_user(struct mm_struct *mm, unsigned long uaddr,
                                     const void *src, unsigned long n)
{
    return uaccess(mm, uaddr, (void *)(uintptr_t)src, n, 1);
}

/**
 * copy_from_user - copy @n bytes of user memory of @mm at @uaddr into
 * @dst, faulting pages in as a user read would.  Returns the bytes not
 * copied.  Process context, no lock held.
 */
KSLAB_API unsigned long copy_from_user(struct mm_struct *mm, void *dst,
                                       unsigned long uaddr, unsigned long n)
{
    return uaccess(mm, uaddr, dst, n, 0);
}

/**
 * get_user_pages - fault in @nr pages from @start (for writing when
 * @write) and, when @pages is not NULL, pin each one and store its struct
 * page; the caller drops each pin with unpin_user_page (or all of them
 * with unpin_user_pages).  After it returns, the host mappings of those
 * pages allow the access, so a system call may be given their window
 * addresses.  While pinned, a page keeps its frame and its mapping:
 * reclaim neither arms nor swaps it out, and mm_fork copies it for the
 * child rather than write-protecting it (later Linux's rule for pages
 * pinned for DMA; 2.4's kiobufs relied on the page lock instead).  Only
 * the mm's own changes (munmap, mprotect, mremap) take the mapping away.
 * Without @pages the pages are only faulted in, as make_pages_present
 * does.  Returns the pages done, or -EFAULT when not even the first could
 * be (-EINVAL for bad arguments).
 */
KSLAB_API long get_user_pages(struct mm_struct *mm, unsigned long start,
                              unsigned long nr, int write, struct page **pages)
{
    if (!mm || (start & ~PAGE_MASK))
        return -EINVAL;
    long done = 0;
    pthread_mutex_lock(&mm->mmap_sem);
    for (; (unsigned long)done < nr; done++) {
        unsigned long addr = start + ((unsigned long)done << PAGE_SHIFT);
        if (addr >= TASK_SIZE || addr < start)
            break;
        struct page *page = follow_page_in(mm, addr, write);
        if (!page)
            break;
        if (pages) {
            get_page(page);
            if (vm_frame_pfn(page) != ZERO_PAGE_PFN)
                __atomic_add_fetch(&page->pins, 1, __ATOMIC_RELEASE);
            pages[done] = page;
        }
    }
    pthread_mutex_unlock(&mm->mmap_sem);
    return done ? done : -EFAULT;
}

/**
 * unpin_user_page - drops a pin get_user_pages took, and its reference.
 * A page that is not pinned is heap corruption (a second unpin, or a page
 * get_user_pages did not return): one line on stderr, then abort().
 */
KSLAB_API void unpin_user_page(struct page *page)
{
    if (!page)
        return;
    if (vm_frame_pfn(page) != ZERO_PAGE_PFN) {
        unsigned int pins = __atomic_load_n(&page->pins, __ATOMIC_RELAXED);
        do {
            if (pins == 0)
                kslab_die("unpin_user_page(): frame %lu is not pinned",
                          vm_frame_pfn(page));
        } while (!__atomic_compare_exchange_n(&page->pins, &pins, pins - 1, 0,
                                              __ATOMIC_RELEASE,
                                              __ATOMIC_RELAXED));
    }
    put_page(page);
}

/** unpin_user_pages - unpin_user_page for each of @nr pages. */
KSLAB_API void unpin_user_pages(struct page **pages, unsigned long nr)
{
    for (unsigned long i = 0; pages && i < nr; i++)
        unpin_user_page(pages[i]);
}

/**
 * make_pages_present - fault in every page of [@start, @end) of @mm as
 * its vma allows (written when writable).  Returns 0, or -ENOMEM when a
 * page is not mapped or memory is out.  Process context, no lock held.
 */
KSLAB_API int make_pages_present(struct mm_struct *mm, unsigned long start,
                                 unsigned long end)
{
    if (!mm || end < start || end > TASK_SIZE)
        return -EINVAL;
    pthread_mutex_lock(&mm->mmap_sem);
    int r = __make_pages_present(mm, start, end);
    pthread_mutex_unlock(&mm->mmap_sem);
    return r;
}
