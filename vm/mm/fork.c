/*
 * vm/mm/fork.c — the life of an mm_struct (2.4 kernel/fork.c and the exit
 * half of mm/mmap.c): mm_alloc builds an empty address space with its host
 * window and brk area, mmput drops a reference and tears the mm down at
 * the last one (exit_mmap: every vma zapped and closed, page tables freed,
 * window given back), and mm_fork duplicates one: dup_mmap copies the
 * vmas (opening each, as a fork opens a file mapping) and
 * copy_page_range shares the frames copy-on-write.  A complete mm is
 * published on the mm list (below), where reclaim and a host fork find it.
 *
 * Locking (vm/mm's order is at the top of mm.h; kslab's whole order at
 * the top of lib/fork.c): mm_fork holds the parent's mmap_sem for the
 * whole copy and publishes the child on the mm list only when it is
 * complete; mmput needs no lock — it runs when nobody else may use the mm.
 *
 * A host fork(): the emulator's locks are the first level of kslab's one
 * fork protocol (vm_mm_fork_prepare below), every mm's mmap_sem and the
 * mm list's lock first.  User memory is copied for the child while every
 * lock is held (the frames by the frames level, vm_highmem_fork_lock; the
 * used swap slots by swap_fork_snapshot), so the two processes' emulated
 * memory is independent afterwards; in the child, each mm (fork_remap_mm)
 * and vmalloc remap their pages onto the copy as they are unlocked —
 * after the frames level's child handler has switched to it.
 */
#include <errno.h>
#include <string.h>

#include "lib/fork.h"
#include "lib/init.h"
#include "vm/frames/os.h"
#include "vm/mm/mm.h"

static kmem_cache_t *mm_cachep;
static struct kslab_once mm_once = KSLAB_ONCE_INIT; /* lib/init.h */

static void mm_cache_init(void)
{
    mm_cachep = kmem_cache_create("mm_struct", sizeof(struct mm_struct), 0,
                                  SLAB_HWCACHE_ALIGN, NULL, NULL);
}

/* ---- the mm list ----
 *
 * The published mms (2.4 kernel/fork.c's mmlist_lock and init_mm's
 * mmlist), where reclaim (vmscan.c), swapoff, vm_check_swap and a host
 * fork find them.  vm_mmlist_lock guards the list; it is never held while
 * waiting for an mmap_sem (the order is mmap_sem → vm_mmlist_lock).
 */

static LIST_HEAD(vm_mmlist);
static pthread_mutex_t vm_mmlist_lock = PTHREAD_MUTEX_INITIALIZER;

/* The list is kept in order of mmlist_seq (an mm joins at the tail with
 * the next number) and never reordered, so a walk with vm_mmlist_next
 * (swapoff, vm_check_swap) visits every mm that stays, once; reclaim's
 * clock over mms is a sequence number (mmlist_hand), not a rotation. */
static unsigned long mmlist_seq_next, mmlist_hand;

static void vm_mmlist_add(struct mm_struct *mm)
{
    pthread_mutex_lock(&vm_mmlist_lock);
    mm->mmlist_seq = ++mmlist_seq_next;
    list_add_tail(&mm->mmlist, &vm_mmlist);
    pthread_mutex_unlock(&vm_mmlist_lock);
}

/* At the last mmput: nobody can take a new reference any more.  An mm
 * that never joined the list (mm_fork failed) has mmlist.next NULL. */
static void vm_mmlist_del(struct mm_struct *mm)
{
    pthread_mutex_lock(&vm_mmlist_lock);
    if (mm->mmlist.next)
        list_del(&mm->mmlist);
    pthread_mutex_unlock(&vm_mmlist_lock);
}

static int get_mm_not_zero(struct mm_struct *mm)
{
    int u = atomic_load(&mm->mm_users);
    while (u > 0)
        if (atomic_compare_exchange_weak(&mm->mm_users, &u, u + 1))
            return 1;
    return 0;
}

/* Walks the mm list: the mm after prev (the first with NULL) with a
 * reference taken, dropping prev's; NULL at the end. */
struct mm_struct *vm_mmlist_next(struct mm_struct *prev)
{
    struct mm_struct *mm = NULL;
    pthread_mutex_lock(&vm_mmlist_lock);
    struct list_head *pos = prev ? prev->mmlist.next : vm_mmlist.next;
    for (; pos != &vm_mmlist; pos = pos->next) {
        struct mm_struct *m = list_entry(pos, struct mm_struct, mmlist);
        if (get_mm_not_zero(m)) {
            mm = m;
            break;
        }
    }
    pthread_mutex_unlock(&vm_mmlist_lock);
    if (prev)
        mmput(prev);
    return mm;
}

/* The next mm after the clock hand (the clock over mms, wrapping), with a
 * reference; NULL when there is none. */
struct mm_struct *vm_mmlist_rotate(void)
{
    struct mm_struct *mm = NULL, *first = NULL;
    pthread_mutex_lock(&vm_mmlist_lock);
    struct list_head *pos;
    list_for_each(pos, &vm_mmlist)
    {
        struct mm_struct *m = list_entry(pos, struct mm_struct, mmlist);
        if (!first && atomic_load(&m->mm_users) > 0)
            first = m;
        if (m->mmlist_seq > mmlist_hand && get_mm_not_zero(m)) {
            mm = m;
            break;
        }
    }
    if (!mm && first && get_mm_not_zero(first))
        mm = first;
    if (mm)
        mmlist_hand = mm->mmlist_seq;
    pthread_mutex_unlock(&vm_mmlist_lock);
    return mm;
}

int vm_mmlist_count(void)
{
    int n = 0;
    struct list_head *pos;
    pthread_mutex_lock(&vm_mmlist_lock);
    list_for_each(pos, &vm_mmlist) n++;
    pthread_mutex_unlock(&vm_mmlist_lock);
    return n;
}

/* ---- host fork() ---- */

/*
 * For a host fork(): every mm on the list gets a reference and its
 * mmap_sem taken, and then vm_mmlist_lock is kept, so no mm can join the
 * list unlocked.  An mmap_sem is waited for only with vm_mmlist_lock
 * released (the order is mmap_sem → vm_mmlist_lock); no path holds one
 * mmap_sem while waiting for another, so waiting here cannot deadlock.
 */
static struct mm_struct *fork_locked;

static void fork_lock_mm(struct mm_struct *mm)
{
    mm->fork_locked = 1;
    mm->fork_next = fork_locked;
    fork_locked = mm;
}

static void mmlist_fork_lock(void)
{
    for (;;) {
        struct mm_struct *wait = NULL;
        struct list_head *pos;
        pthread_mutex_lock(&vm_mmlist_lock);
        list_for_each(pos, &vm_mmlist)
        {
            struct mm_struct *m = list_entry(pos, struct mm_struct, mmlist);
            if (m->fork_locked || !get_mm_not_zero(m))
                continue; /* done, or dying: its mmap_sem is unused */
            if (pthread_mutex_trylock(&m->mmap_sem) == 0) {
                fork_lock_mm(m);
                continue;
            }
            wait = m;
            break;
        }
        if (!wait)
            return;
        pthread_mutex_unlock(&vm_mmlist_lock);
        pthread_mutex_lock(&wait->mmap_sem);
        fork_lock_mm(wait);
    }
}

/* In the child of a host fork, after the frames were copied into the
 * child's own memfd (highmem.c): every vma of mm is mapped again from
 * its page tables, now onto that memfd; premapped runs are forgotten. */
static void fork_remap_mm(struct mm_struct *mm)
{
    mm->premap_start = mm->premap_end = 0;
    if (vm_uffd_fork_child(mm) != 0)
        kslab_die("fork(): cannot map mm %p in the child", (void *)mm);
}

static void mmlist_fork_unlock(int child)
{
    struct mm_struct *list = fork_locked;
    fork_locked = NULL;
    if (child)
        vm_uffd_fork_child_reset();
    for (struct mm_struct *m = list; m; m = m->fork_next) {
        m->fork_locked = 0;
        if (child) {
            fork_remap_mm(m);
            pthread_mutex_init(&m->mmap_sem, NULL);
        } else {
            pthread_mutex_unlock(&m->mmap_sem);
        }
    }
    if (child)
        pthread_mutex_init(&vm_mmlist_lock, NULL);
    else
        pthread_mutex_unlock(&vm_mmlist_lock);
    while (list) {
        struct mm_struct *next = list->fork_next;
        mmput(list);
        list = next;
    }
}

/**
 * vm_mm_fork_prepare - before a host fork(): takes the locks of the
 * address-space side of vm/ in the order they nest (the first level of
 * kslab's lock order, written down at the top of lib/fork.c): a thread
 * holding an mmap_sem may be waiting for a cache or zone lock (page tables
 * and vmas come from the slab), so these come before the slab's.
 * vm_mm_fork_parent releases them; vm_mm_fork_child, in the child, makes
 * them anew — after the slab's and the zones' child handlers, so the
 * references it drops may free.  Registered into the one fork protocol
 * (lib/fork.c, level KSLAB_FORK_MM) when the emulator is first used.
 */
static void vm_mm_fork_prepare(void)
{
    mmlist_fork_lock();
    vm_window_fork_lock();
    vm_vmalloc_fork_lock();
    vm_driver_fork_lock();
    vm_pagecache_fork_lock();
    vm_swap_fork_lock();
}

static void vm_mm_fork_parent(void)
{
    vm_swap_fork_unlock(0);
    vm_pagecache_fork_unlock(0);
    vm_driver_fork_unlock(0);
    vm_vmalloc_fork_unlock(0);
    vm_window_fork_unlock(0);
    mmlist_fork_unlock(0);
}

/* The frames are the child's own copy once the frames level's child
 * handler (vm_highmem_fork_unlock) has run; vmalloc and the mm list then
 * remap their pages onto it. */
static void vm_mm_fork_child(void)
{
    vm_swap_fork_unlock(1);
    vm_pagecache_fork_unlock(1);
    vm_driver_fork_unlock(1);
    vm_vmalloc_fork_unlock(1);
    vm_window_fork_unlock(1);
    mmlist_fork_unlock(1);
}

/**
 * vm_mm_fork_child_serve - in a host fork's child, after every child
 * handler of kslab's fork protocol (lib/fork.c: the thread registry has
 * forgotten the threads that did not come along, so a thread started now
 * keeps its record): the userfaultfd handler thread the parent had is
 * started anew, and every mm is mapped again onto its descriptor.
 *
 * Until then the child runs on the SIGBUS back end (uffd.c's story): its
 * mms were mapped by vm_mm_fork_child onto a descriptor that raises
 * signals, so the faults of the thread's start (glibc's reads of the
 * locale data, perhaps a small block of the mm, swapped out) and of
 * pthread_create in this thread (the loader's data of dlopen'd modules)
 * are served on the thread that takes them.  Once the thread is in its
 * loop its descriptor is put in force and each mm mapped again, with
 * every mmap_sem and vm_mmlist_lock held as a fork's prepare takes them:
 * nothing touches a window meanwhile (this thread maps, the handler
 * thread waits on a descriptor with nothing registered yet).  Without a
 * call the child stays on the SIGBUS back end: correct, but the host
 * kernel's accesses to pages not present fail with EFAULT there.
 * libkslab-vm.so calls it from its own child handler (vmmode/init.c).
 */
void vm_mm_fork_child_serve(void)
{
    if (!vm_uffd_fork_child_start())
        return;
    mmlist_fork_lock();
    struct mm_struct *list = fork_locked;
    fork_locked = NULL;
    vm_uffd_fork_child_switch();
    for (struct mm_struct *m = list; m; m = m->fork_next) {
        m->fork_locked = 0;
        fork_remap_mm(m);
        pthread_mutex_unlock(&m->mmap_sem);
    }
    pthread_mutex_unlock(&vm_mmlist_lock);
    while (list) {
        struct mm_struct *next = list->fork_next;
        mmput(list);
        list = next;
    }
}

static const struct kslab_fork_hook mm_fork_hook = {
    vm_mm_fork_prepare, vm_mm_fork_parent, vm_mm_fork_child};

/* The emulator's part of the fork protocol, registered at its first use:
 * the first mm, vmalloc, mkswap or swapon (idempotent; one atomic
 * compare after the first time). */
void vm_mm_fork_register(void)
{
    kslab_fork_register(KSLAB_FORK_MM, &mm_fork_hook);
}

static struct mm_struct *vm_mm_create(void)
{
    if (vm_highmem_init() != 0 || vm_fault_init() != 0)
        return NULL;
    /* the userfaultfd back end's SIGBUS handler, first again if a
     * handler was put in its place (as vm_fault_init does for SIGSEGV) */
    if (vm_uffd_enabled() && vm_fault_bus_init() != 0)
        return NULL;
    vm_mm_fork_register();
    kslab_once(&mm_once, mm_cache_init);
    if (!mm_cachep)
        return NULL;
    struct mm_struct *mm = kmem_cache_alloc(mm_cachep, GFP_KERNEL);
    if (!mm)
        return NULL;
    memset(mm, 0, sizeof(*mm));
    /* ready before the window is registered: from then on the fault
     * paths (the userfaultfd handler thread among them) may find it */
    atomic_init(&mm->mm_users, 1);
    pthread_mutex_init(&mm->mmap_sem, NULL);
    mm->start_brk = mm->brk = VM_DEFAULT_BRK;
    vm_rlimit_init(mm);
    mm->window = vm_os_reserve(TASK_SIZE, 0);
    if (!mm->window)
        goto fail;
    /* with the userfaultfd handler thread the window's holes are its */
    if (vm_uffd_window_open(mm) != 0 || vm_window_register(mm) != 0) {
        vm_os_free(mm->window, TASK_SIZE);
        goto fail;
    }
    if (vm_kernel_pgd_copy(mm) != 0) {
        vm_window_unregister(mm);
        vm_os_free(mm->window, TASK_SIZE);
        goto fail;
    }
    return mm;
fail:
    pthread_mutex_destroy(&mm->mmap_sem);
    kmem_cache_free(mm_cachep, mm);
    return NULL;
}

/* NULL with errno ENOMEM when no mm can be made (out of memory, or
 * VM_MAX_WINDOWS mms alive). */
KSLAB_API struct mm_struct *mm_alloc(void)
{
    struct mm_struct *mm = vm_mm_create();
    if (!mm) {
        errno = ENOMEM;
        return NULL;
    }
    vm_mmlist_add(mm);
    return mm;
}

/* exit_mmap: the window is emptied first, so no frame is still visible
 * here when it goes back to the allocator. */
static void exit_mmap(struct mm_struct *mm)
{
    vm_host_unmap(mm, 0, TASK_SIZE);
    struct vm_area_struct *v = mm->mmap;
    while (v) {
        struct vm_area_struct *next = v->vm_next;
        zap_page_range(mm, v, v->vm_start, v->vm_end - v->vm_start);
        if (v->vm_ops && v->vm_ops->close)
            v->vm_ops->close(v);
        vm_area_free(v);
        v = next;
    }
    mm->mmap = mm->mmap_avl = mm->mmap_cache = NULL;
    mm->map_count = 0;
    vm_pgtable_free_all(mm);
}

KSLAB_API void mmput(struct mm_struct *mm)
{
    if (!mm)
        return;
    int old = atomic_fetch_sub(&mm->mm_users, 1);
    if (old > 1)
        return;
    if (old != 1)
        kslab_die("mmput(): mm %p has %d users", (void *)mm, old);
    vm_mmlist_del(mm);
    vm_window_unregister(mm);
    /* a fault served by another thread (the userfaultfd handler thread)
     * holds mmap_sem from its look-up to its last pte: once the window
     * is unregistered none can start, and this waits for one in flight */
    pthread_mutex_lock(&mm->mmap_sem);
    pthread_mutex_unlock(&mm->mmap_sem);
    exit_mmap(mm);
    vm_uffd_mm_free(mm);
    vm_os_free(mm->window, TASK_SIZE);
    pthread_mutex_destroy(&mm->mmap_sem);
    kmem_cache_free(mm_cachep, mm);
}

/* dup_mmap: the child's vmas, ptes and host mappings.  mmap_sem of the
 * parent held. */
static int dup_mmap(struct mm_struct *mm, struct mm_struct *old)
{
    struct vm_area_struct *tail = NULL;
    for (struct vm_area_struct *v = old->mmap; v; v = v->vm_next) {
        if (v->vm_flags & VM_DONTCOPY)
            continue;
        struct vm_area_struct *tmp = vm_area_alloc();
        if (!tmp)
            return -ENOMEM;
        vm_copy_vma(tmp, v);
        if (vm_dup_vma_file(tmp, v) != 0) {
            vm_area_free(tmp);
            return -ENFILE;
        }
        tmp->vm_flags &= ~VM_LOCKED;
        tmp->vm_mm = mm;
        tmp->vm_next = NULL;
        tmp->vm_avl_left = tmp->vm_avl_right = NULL;
        if (tmp->vm_ops && tmp->vm_ops->open)
            tmp->vm_ops->open(tmp);
        /* appended in order: the list stays sorted without a search */
        if (tail)
            tail->vm_next = tmp;
        else
            mm->mmap = tmp;
        tail = tmp;
        mm->map_count++;
        int r = copy_page_range(mm, old, v);
        if (r == 0)
            r = vm_host_sync(mm, tmp->vm_start, tmp->vm_end);
        if (r)
            return r;
    }
    if (mm->map_count >= AVL_MIN_MAP_COUNT) {
        /* the tree from the copied list */
        int n = mm->map_count;
        struct vm_area_struct *list = mm->mmap;
        mm->mmap = NULL;
        mm->map_count = 0;
        while (list) {
            struct vm_area_struct *next = list->vm_next;
            insert_vm_struct(mm, list);
            list = next;
        }
        if (mm->map_count != n)
            kslab_die("dup_mmap(): lost vmas");
    }
    return 0;
}

/*
 * The child is published — put on the mm list, where reclaim, swapoff and
 * a host fork find mms — only once dup_mmap has filled it, and with its
 * mmap_sem released: before that nobody can see it.  The parent's
 * mmap_sem is held for the whole copy, so its ptes, and the swap counts
 * and frame references they hold, cannot change under copy_page_range.
 */
KSLAB_API struct mm_struct *mm_fork(struct mm_struct *old)
{
    if (!old) {
        errno = EINVAL;
        return NULL;
    }
    struct mm_struct *mm = vm_mm_create();
    if (!mm) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_lock(&old->mmap_sem);
    mm->start_brk = old->start_brk;
    mm->brk = old->brk;
    mm->def_flags = old->def_flags;
    memcpy(mm->rlim, old->rlim, sizeof mm->rlim);
    int r = dup_mmap(mm, old);
    pthread_mutex_unlock(&old->mmap_sem);
    if (r) {
        mmput(mm);
        errno = r == -ENFILE ? ENFILE : ENOMEM;
        return NULL;
    }
    vm_mmlist_add(mm);
    return mm;
}

KSLAB_API void *mm_host(struct mm_struct *mm, unsigned long addr)
{
    if (!mm || addr >= TASK_SIZE)
        return NULL;
    return mm->window + addr;
}

KSLAB_API void mm_get_stat(struct mm_struct *mm, struct mm_stat *st)
{
    if (!st)
        return;
    if (!mm) {
        memset(st, 0, sizeof(*st));
        return;
    }
    pthread_mutex_lock(&mm->mmap_sem);
    memset(st, 0, sizeof(*st));
    st->rss = mm->rss;
    st->min_flt = mm->min_flt;
    st->maj_flt = mm->maj_flt;
    st->cow_flt = mm->cow_flt;
    st->zero_flt = mm->zero_flt;
    st->swap_in = mm->swap_in;
    st->swap_out = mm->swap_out;
    pthread_mutex_unlock(&mm->mmap_sem);
}
