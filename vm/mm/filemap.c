/*
 * vm/mm/filemap.c — the vm_operations_struct of mappings that are not plain
 * anonymous memory.  A private file mapping reads each page from its fd
 * into a fresh frame at the first fault (nopage; there is no page cache,
 * so two mms mapping the same file privately read it separately).  A
 * shared mapping, anonymous or of a file, has a shared object: one frame
 * slot per page, created at do_mmap (open of a vma without an object),
 * referenced by every vma made from it by split or fork (open) and
 * released by close — the role of the shmem inode and the page cache in
 * 2.4, so that a page first touched after a fork is still the same frame
 * on both sides.  Dirty pages of a shared file object are written back to
 * the file when they are unmapped (zap_page_range) and when the object
 * dies.
 *
 * Locking: callers hold the mm's mmap_sem; the object's slots are guarded
 * by its own mutex because forked mms share it.  I/O uses the frames'
 * kmap addresses, never a user window.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm/frames/os.h"
#include "vm/mm/mm.h"

struct vm_shared_obj {
    atomic_int refs;
    int fd;             /* dup of the file, or -1 for anonymous memory */
    unsigned long base; /* file page of slot 0 */
    unsigned long npages;
    size_t bytes; /* of this mapping, object and slots */
    pthread_mutex_t lock;
    struct page *pages[];
};

static long file_pages(int fd, unsigned long *size)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    *size = (unsigned long)st.st_size;
    return 0;
}

/* Reads file page pgoff into page; 0, or -1 past the end of the file. */
static int read_file_page(int fd, unsigned long pgoff, struct page *page)
{
    unsigned long size, off = pgoff << PAGE_SHIFT;
    if (file_pages(fd, &size) != 0 || off >= size)
        return -1;
    char *dst = vm_kmap(page);
    ssize_t n = pread(fd, dst, PAGE_SIZE, (off_t)off);
    if (n < 0)
        n = 0;
    if (!PageFlag(page, PG_clean))
        memset(dst + n, 0, PAGE_SIZE - (size_t)n);
    ClearPageFlag(page, PG_clean);
    return 0;
}

/* ---- private file mappings ---- */

static struct page *file_private_nopage(struct vm_area_struct *vma,
                                        unsigned long address, int write_access)
{
    (void)write_access;
    unsigned long pgoff =
        vma->vm_pgoff + ((address - vma->vm_start) >> PAGE_SHIFT);
    struct page *page = vm_alloc_user_frame(vma->vm_mm, 0);
    if (!page)
        return NULL;
    if (read_file_page(vma->vm_file, pgoff, page) != 0) {
        put_page(page);
        return NULL;
    }
    vma->vm_mm->maj_flt++;
    return page;
}

const struct vm_operations_struct vm_file_private_ops = {
    .nopage = file_private_nopage,
};

/* ---- shared objects ---- */

static void shared_write_page(struct vm_shared_obj *obj, unsigned long idx)
{
    struct page *page = obj->pages[idx];
    unsigned long size, off = (obj->base + idx) << PAGE_SHIFT;
    if (!page || !PageFlag(page, PG_dirty) || file_pages(obj->fd, &size) ||
        off >= size)
        return;
    size_t n = size - off < PAGE_SIZE ? size - off : PAGE_SIZE;
    if (pwrite(obj->fd, vm_kmap(page), n, (off_t)off) != (ssize_t)n)
        kslab_warn("msync: write-back of page %lu failed", obj->base + idx);
}

void vm_shared_writeback(struct vm_area_struct *vma, unsigned long start,
                         unsigned long end)
{
    struct vm_shared_obj *obj = vma->vm_private_data;
    if (!obj || obj->fd < 0)
        return;
    unsigned long first =
        vma->vm_pgoff - obj->base + ((start - vma->vm_start) >> PAGE_SHIFT);
    unsigned long n = (end - start) >> PAGE_SHIFT;
    pthread_mutex_lock(&obj->lock);
    for (unsigned long i = first; i < first + n && i < obj->npages; i++)
        shared_write_page(obj, i);
    pthread_mutex_unlock(&obj->lock);
}

static void shared_open(struct vm_area_struct *vma)
{
    struct vm_shared_obj *obj = vma->vm_private_data;
    if (obj) {
        atomic_fetch_add(&obj->refs, 1);
        return;
    }
    unsigned long npages = (vma->vm_end - vma->vm_start) >> PAGE_SHIFT;
    size_t bytes = PAGE_ALIGN(sizeof(*obj) + npages * sizeof(struct page *));
    /* slots of a large mapping exceed kmalloc: whole pages from the host */
    obj = vm_os_alloc(bytes, 0, 0);
    if (!obj)
        return;
    atomic_init(&obj->refs, 1);
    obj->fd = -1;
    if (vma->vm_file >= 0 && (obj->fd = dup(vma->vm_file)) < 0) {
        vm_os_free(obj, bytes);
        return;
    }
    obj->base = vma->vm_pgoff;
    obj->npages = npages;
    obj->bytes = bytes;
    pthread_mutex_init(&obj->lock, NULL);
    vma->vm_private_data = obj;
}

static void shared_close(struct vm_area_struct *vma)
{
    struct vm_shared_obj *obj = vma->vm_private_data;
    if (!obj || atomic_fetch_sub(&obj->refs, 1) != 1)
        return;
    struct vm_free_batch batch = {0, 0};
    for (unsigned long i = 0; i < obj->npages; i++) {
        if (!obj->pages[i])
            continue;
        if (obj->fd >= 0)
            shared_write_page(obj, i);
        vm_frame_put(obj->pages[i], &batch);
    }
    vm_free_batch_flush(&batch);
    if (obj->fd >= 0)
        close(obj->fd);
    pthread_mutex_destroy(&obj->lock);
    vm_os_free(obj, obj->bytes);
}

static struct page *shared_nopage(struct vm_area_struct *vma,
                                  unsigned long address, int write_access)
{
    (void)write_access;
    struct vm_shared_obj *obj = vma->vm_private_data;
    unsigned long idx =
        vma->vm_pgoff - obj->base + ((address - vma->vm_start) >> PAGE_SHIFT);
    if (idx >= obj->npages)
        return NULL;
    pthread_mutex_lock(&obj->lock);
    struct page *page = obj->pages[idx];
    if (!page) {
        unsigned long hint = 0;
        if (idx && obj->pages[idx - 1])
            hint = vm_frame_pfn(obj->pages[idx - 1]) + 1;
        page = vm_alloc_user_frame(vma->vm_mm, hint);
        if (page && obj->fd >= 0) {
            if (read_file_page(obj->fd, obj->base + idx, page) != 0) {
                put_page(page);
                page = NULL;
            } else {
                vma->vm_mm->maj_flt++;
            }
        } else if (page) {
            if (!PageFlag(page, PG_clean))
                memset(vm_kmap(page), 0, PAGE_SIZE);
            ClearPageFlag(page, PG_clean);
        }
        obj->pages[idx] = page;
    }
    if (page)
        get_page(page);
    pthread_mutex_unlock(&obj->lock);
    return page;
}

const struct vm_operations_struct vm_shared_ops = {
    .open = shared_open,
    .close = shared_close,
    .nopage = shared_nopage,
};
