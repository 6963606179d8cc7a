/*
 * vm/mm/filemap.c — the page cache (2.4 mm/filemap.c and, for shared
 * anonymous memory, mm/shmem.c).  Every file that is mapped has one
 * struct address_space, found by the file's (st_dev, st_ino) in a small
 * inode table; it holds a dup of an fd of the file for its I/O, counts the
 * vmas that use it, and links them on i_mmap (private mappings) and
 * i_mmap_shared (shared ones) through vm_next_share / vm_pprev_share, as
 * 2.4's __vma_link_file does.  A MAP_SHARED|MAP_ANONYMOUS mapping gets an
 * address_space of its own, with no file (fd -1): the shmem object that
 * the vmas made from it by split and fork share.
 *
 * The cached pages are in one hash keyed by (mapping, index), 2.4's
 * page_hash: page->mapping is the address_space, page->index the page's
 * offset in the file, PG_pagecache marks them, page->private chains a
 * bucket and page->lru puts them on the list that reclaim scans.  The
 * cache holds one reference to each page; every pte that maps it holds
 * one more.  filemap_nopage looks a page up before it reads the file
 * (pread), so every mapping of the file, in every mm, maps the same frame:
 * a shared mapping sees the others' stores at once; a private one maps the
 * page read-only and copies it at its first store (do_no_page and
 * do_wp_page in memory.c).
 *
 * Dirty tracking: user space has no hardware dirty bit, so a shared file
 * pte is mapped read-only by a read fault and made writable (and the page
 * PG_dirty) by the first store, as 2.4's do_wp_page does for shared
 * mappings; a writable pte is taken as dirty wherever it goes (zap,
 * reclaim, msync).  A dirty page is written back (pwrite) by sys_msync, by
 * munmap and mmput of its range, and by reclaim before it is freed; it
 * becomes clean only when no pte but the writer's own can still store to
 * it.  A page of shared anonymous memory goes to swap instead: its slot is
 * kept in the object (swap[]) and read back by the next fault.
 *
 * Reclaim (vmscan.c) unmaps page-cache pages from the ptes it scans, as
 * 2.4's try_to_swap_out does for pages with a mapping; shrink_page_cache
 * then frees the pages no pte maps any more: clean ones without I/O.
 *
 * Locking: pagecache_lock, one mutex, guards the inode table, every
 * address_space (counts, share lists, swap slots), the page hash, the
 * page-cache list and PG_pagecache/page->mapping/page->index of cached
 * pages; the file and swap I/O of the cache runs under it.  It comes after
 * mmap_sem (faults, munmap, msync, reclaim hold one) and before
 * vm_swap_lock (see mm.h).  No frame is allocated while it is held
 * (allocation may reclaim, which takes it).  A page whose count is 1 is
 * the cache's alone: nobody can take a reference to it but under the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm/frames/os.h"
#include "vm/mm/mm.h"

pthread_mutex_t pagecache_lock = PTHREAD_MUTEX_INITIALIZER;

#define PAGE_HASH 4096
#define INODE_HASH 64

static struct page *page_hash_table[PAGE_HASH];
static LIST_HEAD(pagecache_list);
static unsigned long nr_pagecache; /* written under the lock */
/* Every address_space: files by (dev, ino) in inode_table, anonymous ones
 * on anon_list (swapoff and the swap validator walk them). */
static struct address_space *inode_table[INODE_HASH];
static struct address_space *anon_list;

#define PageCache(page) PageFlag(page, PG_pagecache)

static struct page **page_hash(struct address_space *m, unsigned long index)
{
    unsigned long h = ((unsigned long)m / sizeof(*m)) + index;
    return &page_hash_table[(h * 0x9E3779B97F4A7C15UL) >> 52];
}

static struct address_space **inode_bucket(unsigned long dev, unsigned long ino)
{
    return &inode_table[((dev * 31 + ino) * 0x9E3779B97F4A7C15UL) >> 58];
}

/* __find_page: the cached page of (m, index), or NULL. */
static struct page *__find_page(struct address_space *m, unsigned long index)
{
    for (struct page *p = *page_hash(m, index); p;
         p = (struct page *)p->private)
        if (p->mapping == m && p->index == index)
            return p;
    return NULL;
}

/* The cache takes a reference of its own. */
static void __add_to_page_cache(struct page *page, struct address_space *m,
                                unsigned long index)
{
    if (PageCache(page) || PageFlag(page, PG_swapcache))
        kslab_die("add_to_page_cache(): page %lu is in a cache",
                  vm_frame_pfn(page));
    get_page(page);
    page->mapping = m;
    page->index = index;
    SetPageFlag(page, PG_pagecache);
    struct page **b = page_hash(m, index);
    page->private = (unsigned long)*b;
    *b = page;
    list_add_tail(&page->lru, &pagecache_list);
    m->nrpages++;
    __atomic_store_n(&nr_pagecache, nr_pagecache + 1, __ATOMIC_RELAXED);
}

/* Takes page out of the cache and drops the cache's reference (the page
 * is freed when that was the last one). */
static void __remove_from_page_cache(struct page *page)
{
    struct address_space *m = page->mapping;
    struct page **pp = page_hash(m, page->index);
    while (*pp != page) {
        if (!*pp)
            kslab_die("remove_from_page_cache(): page %lu not in its bucket",
                      vm_frame_pfn(page));
        pp = (struct page **)&(*pp)->private;
    }
    *pp = (struct page *)page->private;
    page->private = 0;
    list_del(&page->lru);
    ClearPageFlag(page, PG_pagecache);
    ClearPageFlag(page, PG_dirty);
    page->mapping = NULL;
    page->index = 0;
    m->nrpages--;
    __atomic_store_n(&nr_pagecache, nr_pagecache - 1, __ATOMIC_RELAXED);
    put_page(page);
}

unsigned long vm_page_cache_pages(void)
{
    return __atomic_load_n(&nr_pagecache, __ATOMIC_RELAXED);
}

/* ---- file I/O ---- */

static int file_size(int fd, unsigned long *size)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    *size = (unsigned long)st.st_size;
    return 0;
}

/* Is page index of m wholly beyond the end of the object (SIGBUS)? */
static int beyond_eof(struct address_space *m, unsigned long index)
{
    unsigned long size;
    if (m->fd < 0)
        return index >= m->size;
    return file_size(m->fd, &size) != 0 || (index << PAGE_SHIFT) >= size;
}

/* Reads file page index into page, the tail past the end zeroed. */
static void read_file_page(struct address_space *m, unsigned long index,
                           struct page *page)
{
    char *dst = vm_kmap(page);
    ssize_t n = pread(m->fd, dst, PAGE_SIZE, (off_t)(index << PAGE_SHIFT));
    if (n < 0)
        n = 0;
    if (!PageFlag(page, PG_clean))
        memset(dst + n, 0, PAGE_SIZE - (size_t)n);
    ClearPageFlag(page, PG_clean);
}

/*
 * writepage: a dirty page of a file goes back to it (the part before the
 * end of the file; a page wholly past it has nothing to write).  The page
 * becomes clean when at most maxrefs references hold it — the cache's and
 * those of ptes the caller has just write-protected — so a writable pte
 * elsewhere keeps it dirty.  pagecache_lock held.  Returns 0 or -EIO.
 */
static int __writepage(struct address_space *m, struct page *page, int maxrefs)
{
    unsigned long size, off = page->index << PAGE_SHIFT;
    if (!PageFlag(page, PG_dirty) || m->fd < 0)
        return 0;
    if (file_size(m->fd, &size) != 0)
        return -EIO;
    if (off < size) {
        size_t n = size - off < PAGE_SIZE ? size - off : PAGE_SIZE;
        if (pwrite(m->fd, vm_kmap(page), n, (off_t)off) != (ssize_t)n) {
            kslab_warn("write-back of page %lu of a mapped file failed",
                       page->index);
            return -EIO;
        }
    }
    if (page_count(page) <= maxrefs)
        ClearPageFlag(page, PG_dirty);
    return 0;
}

/* ---- address_space life ---- */

static void share_link(struct vm_area_struct *vma, struct address_space *m)
{
    struct vm_area_struct **head =
        (vma->vm_flags & VM_SHARED) ? &m->i_mmap_shared : &m->i_mmap;
    if ((vma->vm_next_share = *head) != NULL)
        (*head)->vm_pprev_share = &vma->vm_next_share;
    *head = vma;
    vma->vm_pprev_share = head;
}

static void share_unlink(struct vm_area_struct *vma)
{
    if (vma->vm_next_share)
        vma->vm_next_share->vm_pprev_share = vma->vm_pprev_share;
    *vma->vm_pprev_share = vma->vm_next_share;
    vma->vm_next_share = NULL;
    vma->vm_pprev_share = NULL;
}

/* A new shared anonymous object of npages pages. */
static struct address_space *shmem_alloc(unsigned long npages)
{
    struct address_space *m = kmalloc(sizeof(*m), GFP_KERNEL);
    if (!m)
        return NULL;
    memset(m, 0, sizeof(*m));
    m->fd = -1;
    m->size = npages;
    /* slots of a large mapping exceed kmalloc: whole pages from the host */
    m->swap_bytes = PAGE_ALIGN(npages * sizeof(swp_entry_t));
    m->swap = vm_os_alloc(m->swap_bytes, 0, 0);
    if (!m->swap) {
        kfree(m);
        return NULL;
    }
    return m;
}

/* The address_space of the file of fd: found, or made (pagecache_lock
 * held; fd is fstat'ed into st by the caller). */
static struct address_space *__file_mapping(int fd, const struct stat *st)
{
    unsigned long dev = (unsigned long)st->st_dev, ino = st->st_ino;
    struct address_space **b = inode_bucket(dev, ino), *m;
    int rw = (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR;
    for (m = *b; m; m = m->i_next)
        if (m->dev == dev && m->ino == ino)
            break;
    if (m) {
        /* write-back needs a writable fd: take one when it comes */
        if (rw && !m->writable) {
            int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
            if (nfd >= 0) {
                close(m->fd);
                m->fd = nfd;
                m->writable = 1;
            }
        }
        return m;
    }
    m = kmalloc(sizeof(*m), GFP_KERNEL);
    if (!m)
        return NULL;
    memset(m, 0, sizeof(*m));
    m->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (m->fd < 0) {
        kfree(m);
        return NULL;
    }
    m->writable = rw;
    m->dev = dev;
    m->ino = ino;
    m->i_next = *b;
    *b = m;
    return m;
}

/* An address_space nobody maps and with no page cached goes. */
static void __mapping_put(struct address_space *m)
{
    if (m->i_count || m->nrpages)
        return;
    struct address_space **pp;
    if (m->fd >= 0) {
        pp = inode_bucket(m->dev, m->ino);
    } else {
        if (m->nrswapped)
            kslab_die("shmem object %p freed with %lu pages on swap", (void *)m,
                      m->nrswapped);
        pp = &anon_list;
    }
    while (*pp && *pp != m)
        pp = &(*pp)->i_next;
    if (*pp)
        *pp = m->i_next;
    if (m->fd >= 0)
        close(m->fd);
    if (m->swap)
        vm_os_free(m->swap, m->swap_bytes);
    kfree(m);
}

/* Every page of m leaves the cache (their frames are freed when no pte or
 * pin holds them) and every swap slot is given back; for an object that
 * dies (shared anonymous memory, a deleted file).  pagecache_lock held. */
static void __truncate_mapping(struct address_space *m)
{
    struct list_head *pos, *n;
    list_for_each_safe(pos, n, &pagecache_list)
    {
        struct page *page = list_entry(pos, struct page, lru);
        if (page->mapping == m)
            __remove_from_page_cache(page);
    }
    if (m->nrswapped) {
        pthread_mutex_lock(&vm_swap_lock);
        for (unsigned long i = 0; i < m->size; i++)
            if (m->swap[i].val) {
                __swap_free(m->swap[i]);
                m->swap[i].val = 0;
            }
        pthread_mutex_unlock(&vm_swap_lock);
        m->nrswapped = 0;
    }
}

/*
 * open: a vma starts to use its mapping — a new mapping (do_mmap: the
 * file's address_space found or made, or a new shared anonymous object),
 * or a copy of a vma (split, fork) that shares its address_space.  It is
 * linked on the share list.  On failure vm_private_data stays NULL.
 */
static void filemap_open(struct vm_area_struct *vma)
{
    struct address_space *m = vma->vm_private_data;
    struct stat st;
    if (!m && vma->vm_file >= 0 && fstat(vma->vm_file, &st) != 0)
        return;
    if (!m && vma->vm_file < 0 &&
        !(m = shmem_alloc((vma->vm_end - vma->vm_start) >> PAGE_SHIFT)))
        return;
    pthread_mutex_lock(&pagecache_lock);
    if (!m) {
        m = __file_mapping(vma->vm_file, &st);
    } else if (!vma->vm_private_data) { /* the new shmem object */
        m->i_next = anon_list;
        anon_list = m;
    }
    if (m) {
        m->i_count++;
        share_link(vma, m);
        vma->vm_private_data = m;
    }
    pthread_mutex_unlock(&pagecache_lock);
}

/* Drops a use of m (a vma's, or a truncation's): the last one of shared
 * anonymous memory frees it; a file's pages stay cached (until reclaim)
 * unless the file was deleted.  pagecache_lock held. */
static void __mapping_release(struct address_space *m)
{
    struct stat st;
    if (--m->i_count)
        return;
    if (m->fd < 0 || (fstat(m->fd, &st) == 0 && st.st_nlink == 0))
        __truncate_mapping(m);
    __mapping_put(m);
}

/* close: the vma no longer uses its mapping. */
static void filemap_close(struct vm_area_struct *vma)
{
    struct address_space *m = vma->vm_private_data;
    if (!m)
        return;
    pthread_mutex_lock(&pagecache_lock);
    share_unlink(vma);
    vma->vm_private_data = NULL;
    __mapping_release(m);
    pthread_mutex_unlock(&pagecache_lock);
}

/* ---- faults ---- */

/* Reads page index of shared anonymous memory m back from its swap slot
 * into page; the slot is freed.  pagecache_lock held. */
static int __shmem_readpage(struct address_space *m, unsigned long index,
                            struct page *page)
{
    swp_entry_t entry = m->swap[index];
    pthread_mutex_lock(&vm_swap_lock);
    int r = vm_swap_io(entry, page, 0);
    if (r == 0) {
        __swap_free(entry);
        vm_pswpin++;
    }
    pthread_mutex_unlock(&vm_swap_lock);
    if (r != 0)
        return -EIO;
    ClearPageFlag(page, PG_clean);
    m->swap[index].val = 0;
    m->nrswapped--;
    return 0;
}

/* The page of (m, index) brought into the cache: read from the file, from
 * swap (shared anonymous memory), or zeroed.  page is a frame of ours. */
static int __fill_page(struct mm_struct *mm, struct address_space *m,
                       unsigned long index, struct page *page)
{
    if (m->fd >= 0) {
        read_file_page(m, index, page);
        mm->maj_flt++;
        return 0;
    }
    if (m->swap[index].val) {
        if (__shmem_readpage(m, index, page) != 0)
            return -EIO;
        mm->maj_flt++;
        mm->swap_in++;
        return 0;
    }
    if (!PageFlag(page, PG_clean))
        memset(vm_kmap(page), 0, PAGE_SIZE);
    ClearPageFlag(page, PG_clean);
    return 0;
}

/*
 * filemap_nopage: the page at address of vma, from the page cache, read
 * in first when it is not there (2.4's filemap_nopage; shmem_nopage for
 * anonymous objects).  Returns it with a reference for the caller;
 * NOPAGE_SIGBUS (NULL) for a page wholly beyond the end of the file — a
 * stale cached page there (the file shrank) leaves the cache when nobody
 * maps it — and on an I/O error; NOPAGE_OOM when no frame is free.
 */
static struct page *filemap_nopage(struct vm_area_struct *vma,
                                   unsigned long address, int write_access)
{
    (void)write_access;
    struct address_space *m = vma->vm_private_data;
    unsigned long index =
        vma->vm_pgoff + ((address - vma->vm_start) >> PAGE_SHIFT);
    struct page *page, *new = NULL;

    pthread_mutex_lock(&pagecache_lock);
    for (;;) {
        page = __find_page(m, index);
        if (beyond_eof(m, index)) {
            if (page && page_count(page) == 1)
                __remove_from_page_cache(page);
            page = NOPAGE_SIGBUS;
            break;
        }
        if (page) {
            get_page(page);
            break;
        }
        if (new) {
            if (__fill_page(vma->vm_mm, m, index, new) != 0) {
                page = NOPAGE_SIGBUS;
                break;
            }
            __add_to_page_cache(new, m, index);
            page = new; /* our reference becomes the caller's */
            new = NULL;
            break;
        }
        /* no frame is allocated under the lock: it may reclaim */
        pthread_mutex_unlock(&pagecache_lock);
        new = vm_alloc_user_frame(vma->vm_mm, 0);
        if (!new)
            return NOPAGE_OOM;
        pthread_mutex_lock(&pagecache_lock);
    }
    pthread_mutex_unlock(&pagecache_lock);
    if (new)
        put_page(new);
    return page;
}

const struct vm_operations_struct vm_shared_ops = {
    .open = filemap_open,
    .close = filemap_close,
    .nopage = filemap_nopage,
};

const struct vm_operations_struct vm_file_private_ops = {
    .open = filemap_open,
    .close = filemap_close,
    .nopage = filemap_nopage,
};

/* ---- write-back ---- */

/* The dirty cached pages of vma's file over [start, end) are written
 * back; a page that a pte of mm in the range still maps counts that
 * reference as the writer's own (see __writepage).  pagecache_lock and
 * mmap_sem held. */
static int __writeback_range(struct mm_struct *mm, struct vm_area_struct *vma,
                             unsigned long start, unsigned long end)
{
    struct address_space *m = vma->vm_private_data;
    int err = 0;
    for (unsigned long a = start; a < end; a += PAGE_SIZE) {
        unsigned long index =
            vma->vm_pgoff + ((a - vma->vm_start) >> PAGE_SHIFT);
        struct page *page = __find_page(m, index);
        if (!page || !PageFlag(page, PG_dirty))
            continue;
        pte_t *pte = vm_pte_lookup(mm, a);
        int mine = pte && pte_present(*pte) && pte_page(*pte) == page;
        if (__writepage(m, page, 1 + mine) != 0)
            err = -EIO;
    }
    return err;
}

/* After zap_page_range of [start, end) of a shared file vma: its dirty
 * pages go back to the file (munmap, mmput).  mmap_sem held. */
void vm_shared_writeback(struct vm_area_struct *vma, unsigned long start,
                         unsigned long end)
{
    if (!vma->vm_private_data || vma->vm_file < 0)
        return;
    pthread_mutex_lock(&pagecache_lock);
    __writeback_range(vma->vm_mm, vma, start, end);
    pthread_mutex_unlock(&pagecache_lock);
}

/*
 * filemap_sync (2.4): the dirty state of the ptes of [start, end) moves to
 * the pages — a writable or dirty pte marks its page PG_dirty and becomes
 * read-only and clean, so the next store faults and marks it again — and
 * the dirty pages of the range are written back.  mmap_sem held.
 */
static int filemap_sync(struct mm_struct *mm, struct vm_area_struct *vma,
                        unsigned long start, unsigned long end, int flags)
{
    int changed = 0;
    for (unsigned long a = start; a < end;) {
        pte_t *pte = vm_pte_lookup(mm, a);
        if (!pte) {
            a = (a + PMD_SIZE) & PMD_MASK;
            continue;
        }
        if (pte_present(*pte) && pte_pfn(*pte) != ZERO_PAGE_PFN &&
            (pte_val(*pte) & (_PAGE_RW | _PAGE_DIRTY)) &&
            PageCache(pte_page(*pte))) {
            SetPageFlag(pte_page(*pte), PG_dirty);
            *pte = pte_mkclean(pte_wrprotect(*pte));
            changed = 1;
        }
        a += PAGE_SIZE;
    }
    /* the host follows the ptes: read-only where they were cleaned */
    if (changed && vm_host_sync(mm, start, end) != 0)
        return -ENOMEM;
    pthread_mutex_lock(&pagecache_lock);
    int r = __writeback_range(mm, vma, start, end);
    struct address_space *m = vma->vm_private_data;
    if (r == 0 && (flags & MS_SYNC) && fdatasync(m->fd) != 0 && errno != EINVAL)
        r = -EIO;
    pthread_mutex_unlock(&pagecache_lock);
    return r;
}

/**
 * sys_msync - msync(2) for an emulated address space: the dirty pages of
 * the shared file mappings in [@start, @start + @len) are written back to
 * their files (pwrite).  @flags: MS_ASYNC, MS_SYNC (also fdatasync of the
 * file), MS_INVALIDATE (the page cache is the only copy, so there is
 * nothing to invalidate; -EBUSY over a locked vma, as Linux); writes are
 * synchronous, so MS_ASYNC writes too.  Returns 0; -EINVAL for an unknown
 * flag, MS_ASYNC with MS_SYNC, or an unaligned @start; -ENOMEM when part of
 * the range is not mapped (the mapped parts are still synced); -EIO when a
 * write failed.  Process context, no lock held.
 */
KSLAB_API int sys_msync(struct mm_struct *mm, unsigned long start, size_t len,
                        int flags)
{
    if (!mm || (flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC)) ||
        (start & ~PAGE_MASK) || ((flags & MS_ASYNC) && (flags & MS_SYNC)))
        return -EINVAL;
    if (PAGE_ALIGN(len) < len)
        return -ENOMEM;
    unsigned long end = start + PAGE_ALIGN(len);
    if (end < start)
        return -ENOMEM;
    if (end == start)
        return 0;
    int err = 0, unmapped = 0;
    pthread_mutex_lock(&mm->mmap_sem);
    struct vm_area_struct *vma = __find_vma(mm, start);
    for (;;) {
        if (!vma) {
            unmapped = -ENOMEM;
            break;
        }
        if (start < vma->vm_start) {
            unmapped = -ENOMEM;
            start = vma->vm_start;
            if (start >= end)
                break;
        }
        if ((flags & MS_INVALIDATE) && (vma->vm_flags & VM_LOCKED)) {
            err = -EBUSY;
            break;
        }
        unsigned long e = vma->vm_end < end ? vma->vm_end : end;
        if ((vma->vm_flags & VM_SHARED) && vma->vm_ops == &vm_shared_ops &&
            vma->vm_private_data && vma->vm_file >= 0) {
            int r = filemap_sync(mm, vma, start, e, flags);
            if (r)
                err = r;
        }
        start = e;
        if (start >= end)
            break;
        vma = vma->vm_next;
    }
    pthread_mutex_unlock(&mm->mmap_sem);
    return err ? err : unmapped;
}

/* ---- truncation ---- */

/*
 * truncate_inode_pages (2.4 mm/filemap.c): every cached page of mapping
 * wholly beyond lstart leaves the cache (its frame is freed once no pte
 * or pin holds it), and the part of the page that lstart falls in beyond
 * it is zeroed (2.4's truncate_partial_page), so the file grown again
 * reads zeroes there, not the old bytes.  A file's mapping only (shared
 * anonymous memory has swap slots and is never truncated).  Takes
 * pagecache_lock.
 */
void truncate_inode_pages(struct address_space *mapping, loff_t lstart)
{
    unsigned long pgoff = ((unsigned long)lstart + PAGE_SIZE - 1) >> PAGE_SHIFT;
    unsigned long partial = (unsigned long)lstart & ~PAGE_MASK;
    struct list_head *pos, *n;
    pthread_mutex_lock(&pagecache_lock);
    if (mapping->fd < 0)
        kslab_die("truncate_inode_pages(): mapping %p is not a file's",
                  (void *)mapping);
    unsigned long left = mapping->nrpages;
    list_for_each_safe(pos, n, &pagecache_list)
    {
        if (!left)
            break;
        struct page *page = list_entry(pos, struct page, lru);
        if (page->mapping != mapping)
            continue;
        left--;
        if (page->index >= pgoff)
            __remove_from_page_cache(page);
        else if (partial && page->index == pgoff - 1)
            memset((char *)vm_kmap(page) + partial, 0, PAGE_SIZE - partial);
    }
    pthread_mutex_unlock(&pagecache_lock);
}

/* Is a cached page of mapping from pgoff on still mapped by a pte (a
 * reference besides the cache's and the pins)?  Takes pagecache_lock. */
int vm_mapping_mapped_from(struct address_space *mapping, unsigned long pgoff)
{
    struct list_head *pos;
    int mapped = 0;
    pthread_mutex_lock(&pagecache_lock);
    unsigned long left = mapping->nrpages;
    list_for_each(pos, &pagecache_list)
    {
        struct page *page = list_entry(pos, struct page, lru);
        if (!left || mapped)
            break;
        if (page->mapping != mapping)
            continue;
        left--;
        mapped = page->index >= pgoff && page_unpinned_count(page) > 1;
    }
    pthread_mutex_unlock(&pagecache_lock);
    return mapped;
}

/* The address_space of the file (dev, ino), with a use taken (i_count),
 * or NULL when no mapping of it is known. */
static struct address_space *mapping_get(const struct stat *st)
{
    unsigned long dev = (unsigned long)st->st_dev, ino = st->st_ino;
    pthread_mutex_lock(&pagecache_lock);
    struct address_space *m = *inode_bucket(dev, ino);
    while (m && (m->dev != dev || m->ino != ino))
        m = m->i_next;
    if (m)
        m->i_count++;
    pthread_mutex_unlock(&pagecache_lock);
    return m;
}

/**
 * sys_ftruncate - ftruncate(2) of a file that emulated mms may map
 * (2.4's sys_ftruncate → do_truncate → vmtruncate): the host file is cut
 * (or grown) to @length bytes, then, when it shrank, the pages wholly
 * beyond the new end leave every mapping of it in every mm (an access
 * there gets SIGBUS with BUS_ADRERR, as for any page past a file's end)
 * and the page cache, and the last page's bytes beyond it are zeroed; the
 * pages before it are untouched (when it grew, the old last page's bytes
 * beyond the old end are zeroed, as the file reads).  @fd: an fd of the file
 * open for writing.  Returns 0 or -errno: ftruncate(2)'s (-EBADF, -EINVAL, ...)
 * with nothing changed, or -ENOMEM when the host refused to unmap a range
 * (the file is cut; the rest is done).  Process context, no lock held.
 */
KSLAB_API int sys_ftruncate(int fd, off_t length)
{
    struct stat st;
    if (length < 0)
        return -EINVAL;
    if (fstat(fd, &st) != 0)
        return -errno;
    struct address_space *m = mapping_get(&st);
    int r = ftruncate(fd, length) == 0 ? 0 : -errno;
    /* growing, too: the old last page's bytes beyond the old end read
     * zero in the file now, so they must in the cache (a shared store
     * beyond the end is never written back) */
    if (m && r == 0)
        r = vmtruncate(m, length < st.st_size ? length : st.st_size);
    if (m) {
        pthread_mutex_lock(&pagecache_lock);
        __mapping_release(m);
        pthread_mutex_unlock(&pagecache_lock);
    }
    return r;
}

/**
 * sys_truncate - truncate(2) by path, as sys_ftruncate.  Returns 0 or
 * -errno (open(2)'s or ftruncate(2)'s, nothing changed).  Process
 * context, no lock held.
 */
KSLAB_API int sys_truncate(const char *path, off_t length)
{
    if (!path)
        return -EFAULT;
    if (length < 0)
        return -EINVAL;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = sys_ftruncate(fd, length);
    close(fd);
    return r;
}

/* ---- reclaim ---- */

/* A page of shared anonymous memory that no pte maps goes to a swap slot,
 * kept in its object.  Both locks held; 0, or -1 when it must stay. */
static int __shmem_writepage(struct address_space *m, struct page *page)
{
    swp_entry_t entry = __get_swap_page();
    if (!entry.val)
        return -1; /* no swap space */
    if (vm_swap_io(entry, page, 1) != 0) {
        __swap_free(entry);
        return -1;
    }
    vm_pswpout++;
    m->swap[page->index] = entry;
    m->nrswapped++;
    return 0;
}

/*
 * shrink_page_cache: frees up to want cached pages that no pte maps (the
 * cache's reference is the only one), oldest first: a clean file page
 * without I/O, a dirty one after its write-back, a page of shared
 * anonymous memory after it was written to swap.  Returns the frames
 * freed.  No lock held (the caller may hold an mmap_sem).
 */
unsigned long vm_shrink_page_cache(unsigned long want)
{
    unsigned long freed = 0;
    struct list_head *pos, *n;
    pthread_mutex_lock(&pagecache_lock);
    list_for_each_safe(pos, n, &pagecache_list)
    {
        if (freed >= want)
            break;
        struct page *page = list_entry(pos, struct page, lru);
        if (page_count(page) != 1)
            continue;
        struct address_space *m = page->mapping;
        if (m->fd < 0) {
            pthread_mutex_lock(&vm_swap_lock);
            int r = __shmem_writepage(m, page);
            pthread_mutex_unlock(&vm_swap_lock);
            if (r)
                continue;
        } else if (__writepage(m, page, 1) != 0 || PageFlag(page, PG_dirty)) {
            continue;
        }
        __remove_from_page_cache(page);
        freed++;
        if (!m->nrpages && !m->i_count)
            __mapping_put(m);
    }
    pthread_mutex_unlock(&pagecache_lock);
    return freed;
}

/* ---- swap of shared anonymous memory: swapoff and the validator ---- */

/* The first slot of shared anonymous memory on area type, or NULL.
 * pagecache_lock held. */
static struct address_space *__shmem_find_slot(unsigned int type,
                                               unsigned long *index)
{
    for (struct address_space *m = anon_list; m; m = m->i_next)
        for (unsigned long i = 0; i < m->size && m->nrswapped; i++)
            if (m->swap[i].val && SWP_TYPE(m->swap[i]) == type) {
                *index = i;
                return m;
            }
    return NULL;
}

/*
 * swapoff: every page of shared anonymous memory on swap area type comes
 * back into the cache (2.4's shmem_unuse).  Returns 0, -ENOMEM or -EIO.
 * No lock held.
 */
int vm_shmem_unuse(unsigned int type)
{
    for (;;) {
        /* no frame is allocated under the lock: one first, then the
         * search again (the object found before may be gone meanwhile) */
        unsigned long i;
        pthread_mutex_lock(&pagecache_lock);
        struct address_space *m = __shmem_find_slot(type, &i);
        pthread_mutex_unlock(&pagecache_lock);
        if (!m)
            return 0;
        struct page *new = vm_alloc_user_frame(NULL, 0);
        if (!new)
            return -ENOMEM;
        pthread_mutex_lock(&pagecache_lock);
        m = __shmem_find_slot(type, &i);
        int r = m ? __shmem_readpage(m, i, new) : 0;
        if (m && r == 0)
            __add_to_page_cache(new, m, i);
        pthread_mutex_unlock(&pagecache_lock);
        put_page(new); /* the cache holds it, or it goes */
        if (!m || r)
            return r;
    }
}

/* Calls fn for every swap slot held by shared anonymous memory (the swap
 * validator counts them).  pagecache_lock taken; fn must not take it. */
void vm_shmem_for_each_swap(void (*fn)(swp_entry_t entry, void *arg), void *arg)
{
    pthread_mutex_lock(&pagecache_lock);
    for (struct address_space *m = anon_list; m; m = m->i_next)
        for (unsigned long i = 0; i < m->size && m->nrswapped; i++)
            if (m->swap[i].val)
                fn(m->swap[i], arg);
    pthread_mutex_unlock(&pagecache_lock);
}

/* ---- host fork ---- */

void vm_pagecache_fork_lock(void)
{
    pthread_mutex_lock(&pagecache_lock);
}

void vm_pagecache_fork_unlock(int child)
{
    if (child)
        pthread_mutex_init(&pagecache_lock, NULL);
    else
        pthread_mutex_unlock(&pagecache_lock);
}

/* ---- the view for people ---- */

static int dump_list(FILE *out, const char *name, struct vm_area_struct *head)
{
    int n = 0;
    fprintf(out, "%s:", name);
    for (struct vm_area_struct *v = head; v; v = v->vm_next_share, n++)
        fprintf(out, " [mm %p %08lx-%08lx pgoff %lu]", (void *)v->vm_mm,
                v->vm_start, v->vm_end, v->vm_pgoff);
    fprintf(out, "%s\n", n ? "" : " (none)");
    return n;
}

/**
 * mm_dump_mapping - prints the page cache behind the mapping at @addr of
 * @mm: the file's address_space (or the shared anonymous object), its
 * cached and swapped pages, and the vmas of every mm on its i_mmap and
 * i_mmap_shared lists.  A snapshot for a quiet system (other mms' vmas
 * are read without their mmap_sem).  Returns the number of vmas listed,
 * -EINVAL for a bad argument or -ENOENT when no file or shared mapping
 * covers @addr.  Process context, no lock held.
 */
KSLAB_API int mm_dump_mapping(struct mm_struct *mm, unsigned long addr,
                              FILE *out)
{
    if (!mm || !out)
        return -EINVAL;
    int n = -ENOENT;
    pthread_mutex_lock(&mm->mmap_sem);
    struct vm_area_struct *vma = __find_vma(mm, addr);
    struct address_space *m = NULL;
    if (vma && vma->vm_start <= addr &&
        (vma->vm_ops == &vm_shared_ops || vma->vm_ops == &vm_file_private_ops))
        m = vma->vm_private_data;
    if (m) {
        pthread_mutex_lock(&pagecache_lock);
        if (m->fd >= 0)
            fprintf(out, "address_space %p: file %02lx:%02lx %lu, ", (void *)m,
                    (m->dev >> 8) & 0xfff, m->dev & 0xff, m->ino);
        else
            fprintf(out, "address_space %p: shared anonymous, %lu pages, ",
                    (void *)m, m->size);
        fprintf(out, "%lu vmas, %lu pages cached, %lu on swap\n", m->i_count,
                m->nrpages, m->nrswapped);
        n = dump_list(out, "  i_mmap_shared", m->i_mmap_shared);
        n += dump_list(out, "  i_mmap", m->i_mmap);
        pthread_mutex_unlock(&pagecache_lock);
    }
    pthread_mutex_unlock(&mm->mmap_sem);
    return n;
}
