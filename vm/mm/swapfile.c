/*
 * vm/mm/swapfile.c — swap areas (2.4 mm/swapfile.c): mkswap writes a swap
 * file whose first page is the Linux v1 swap header ("SWAPSPACE2" in the
 * last ten bytes, version and last_page at offset 1024), sys_swapon
 * validates one and adds it to swap_info[] with a priority, sys_swapoff
 * brings every page of an area back (try_to_unuse) and removes it.  Each
 * area has a swap_map of use counts, one per page slot: a pte holding the
 * entry counts one, the swap cache's copy of the page counts one; slot 0
 * is the header and is never handed out.  get_swap_page takes a free slot
 * of the highest-priority area that has one (round robin among equals),
 * near the last one taken, so pages evicted together lie together on disk
 * and swapin_readahead finds them in one aligned cluster.
 *
 * Locking: vm_swap_lock guards swap_info[], every swap_map and the swap
 * I/O (see mm.h).  sys_swapon/sys_swapoff are called with no lock held;
 * try_to_unuse takes each mm's mmap_sem in turn and vm_swap_lock inside
 * it, never the other way round.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm/frames/os.h"
#include "vm/mm/mm.h"

pthread_mutex_t vm_swap_lock = PTHREAD_MUTEX_INITIALIZER;
/* guards the static swap header buffers of mkswap and swap_open */
static pthread_mutex_t h_lock = PTHREAD_MUTEX_INITIALIZER;

static void swap_fork_snapshot(void);
static void swap_fork_switch(int child);

/* h_lock is never held with vm_swap_lock: either order is safe. */
void vm_swap_fork_lock(void)
{
    pthread_mutex_lock(&h_lock);
    pthread_mutex_lock(&vm_swap_lock);
    swap_fork_snapshot();
}

void vm_swap_fork_unlock(int child)
{
    swap_fork_switch(child);
    if (child) {
        pthread_mutex_init(&vm_swap_lock, NULL);
        pthread_mutex_init(&h_lock, NULL);
        return;
    }
    pthread_mutex_unlock(&vm_swap_lock);
    pthread_mutex_unlock(&h_lock);
}

#define SWP_USED 1
#define SWP_WRITEOK 3
#define SWAP_MAP_MAX 0x7fff
#define SWAP_MIN_PAGES 10 /* header + 9 slots: mkswap(8)'s minimum */
#define SWAP_MAGIC "SWAPSPACE2"

/* The v1 swap header of Linux (include/linux/swap.h), so a file made here
 * is a real swap file and a real one is accepted. */
union swap_header {
    struct {
        char reserved[PAGE_SIZE - 10];
        char magic[10];
    } magic;
    struct {
        char bootbits[1024];
        uint32_t version;
        uint32_t last_page;
        uint32_t nr_badpages;
        unsigned char sws_uuid[16];
        char sws_volume[16];
        uint32_t padding[117];
        uint32_t badpages[1];
    } info;
};

/*
 * One swap area.  Slots [1, max) exist; lowest_bit..highest_bit bound the
 * slots in use or free-able (a hint), inuse_pages counts slots with a
 * nonzero swap_map.  flags: SWP_USED while the entry is taken, and
 * SWP_WRITEOK while new pages may go to it (cleared by swapoff).
 */
struct swap_info_struct {
    unsigned int flags;
    int fd;
    dev_t dev;
    ino_t ino;
    int prio;
    unsigned short *swap_map;
    unsigned long max;
    unsigned long cluster_next;
    unsigned long inuse_pages;
    char path[PATH_MAX];
};

static struct swap_info_struct swap_info[MAX_SWAPFILES];
static int least_priority;
static int swap_last_type = -1;

/* ---- swap_map counts ---- */

static struct swap_info_struct *entry_area(swp_entry_t entry, const char *who)
{
    unsigned long type = SWP_TYPE(entry), off = SWP_OFFSET(entry);
    struct swap_info_struct *si = &swap_info[type];
    if (type >= MAX_SWAPFILES || !(si->flags & SWP_USED) || !off ||
        off >= si->max || !si->swap_map[off])
        kslab_die("%s(): bad swap entry %lx", who, entry.val);
    return si;
}

static unsigned long scan_swap_map(struct swap_info_struct *si)
{
    for (unsigned long i = 0; i < si->max - 1; i++) {
        unsigned long off = si->cluster_next + i;
        if (off >= si->max)
            off -= si->max - 1;
        if (!si->swap_map[off]) {
            si->swap_map[off] = 1;
            si->inuse_pages++;
            si->cluster_next = off + 1 < si->max ? off + 1 : 1;
            return off;
        }
    }
    return 0;
}

/* A free slot with count 1 (the swap cache's reference), or val 0. */
swp_entry_t __get_swap_page(void)
{
    int best = -1;
    for (int k = 1; k <= MAX_SWAPFILES; k++) {
        int i = (swap_last_type + k + MAX_SWAPFILES) % MAX_SWAPFILES;
        struct swap_info_struct *si = &swap_info[i];
        if ((si->flags & SWP_WRITEOK) != SWP_WRITEOK ||
            si->inuse_pages >= si->max - 1)
            continue;
        if (best < 0 || si->prio > swap_info[best].prio)
            best = i;
    }
    if (best < 0)
        return (swp_entry_t){0};
    unsigned long off = scan_swap_map(&swap_info[best]);
    if (!off)
        return (swp_entry_t){0};
    swap_last_type = best;
    return SWP_ENTRY(best, off);
}

int __swap_duplicate(swp_entry_t entry)
{
    struct swap_info_struct *si = entry_area(entry, "swap_duplicate");
    unsigned short *c = &si->swap_map[SWP_OFFSET(entry)];
    if (*c < SWAP_MAP_MAX)
        (*c)++; /* at SWAP_MAP_MAX the slot stays for good, as in 2.4 */
    return 1;
}

void __swap_free(swp_entry_t entry)
{
    struct swap_info_struct *si = entry_area(entry, "swap_free");
    unsigned short *c = &si->swap_map[SWP_OFFSET(entry)];
    if (*c < SWAP_MAP_MAX && !--*c)
        si->inuse_pages--;
}

int __swap_count(swp_entry_t entry)
{
    return entry_area(entry, "swap_count")->swap_map[SWP_OFFSET(entry)];
}

/* The use count of entry, 0 when it is not a used slot of an area that
 * is on (no complaint: readahead probes neighbours). */
int __swap_entry_used(swp_entry_t entry)
{
    unsigned long type = SWP_TYPE(entry), off = SWP_OFFSET(entry);
    if (type >= MAX_SWAPFILES || !(swap_info[type].flags & SWP_USED) || !off ||
        off >= swap_info[type].max)
        return 0;
    return swap_info[type].swap_map[off];
}

/* Whether new ptes may take entry: its area is on and not being swapped
 * off (a page swapped out again after try_to_unuse passed its mm would
 * keep the area busy). */
int __swap_entry_writeok(swp_entry_t entry)
{
    unsigned long type = SWP_TYPE(entry);
    return type < MAX_SWAPFILES &&
           (swap_info[type].flags & SWP_WRITEOK) == SWP_WRITEOK;
}

int swap_duplicate(swp_entry_t entry)
{
    pthread_mutex_lock(&vm_swap_lock);
    int r = __swap_duplicate(entry);
    pthread_mutex_unlock(&vm_swap_lock);
    return r;
}

/* rw_swap_page: one page between its frame and its slot.  vm_swap_lock
 * held.  0, or -EIO (the page stays as it was). */
int vm_swap_io(swp_entry_t entry, struct page *page, int write)
{
    struct swap_info_struct *si = entry_area(entry, "rw_swap_page");
    char *buf = vm_kmap(page);
    off_t pos = (off_t)(SWP_OFFSET(entry) << PAGE_SHIFT);
    size_t done = 0;
    while (done < PAGE_SIZE) {
        ssize_t n = write ? pwrite(si->fd, buf + done, PAGE_SIZE - done,
                                   pos + (off_t)done)
                          : pread(si->fd, buf + done, PAGE_SIZE - done,
                                  pos + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -EIO;
        done += (size_t)n;
    }
    if (!write)
        ClearPageFlag(page, PG_clean);
    return 0;
}

void vm_swap_totals(unsigned long *total, unsigned long *free)
{
    *total = *free = 0;
    pthread_mutex_lock(&vm_swap_lock);
    for (int i = 0; i < MAX_SWAPFILES; i++) {
        struct swap_info_struct *si = &swap_info[i];
        if ((si->flags & SWP_WRITEOK) != SWP_WRITEOK)
            continue;
        *total += si->max - 1;
        *free += si->max - 1 - si->inuse_pages;
    }
    pthread_mutex_unlock(&vm_swap_lock);
}

/*
 * Host fork(): after it the parent and the child each have their own
 * swap_map, so they must not share the slots either — one would reuse a
 * slot the other still reads.  With vm_swap_lock held (no swap I/O runs)
 * the used slots of every area are copied into a new memfd, which
 * becomes the child's backing of that area (same path, device and inode
 * for swapon/swapoff; the data lives in memory).  The cost is a copy of
 * the swap in use.  An area whose copy fails is left unusable in the
 * child (-EIO on every swap I/O), never shared.
 */
static int fork_swap_fd[MAX_SWAPFILES];

/* In the kernel when it can (same file system type); else through a
 * static buffer (every other thread is stopped at the vm locks). */
static int copy_slots(int from, int to, unsigned long off, unsigned long n)
{
    static char buf[16 * PAGE_SIZE];
    off64_t in = (off64_t)(off << PAGE_SHIFT), out = in;
    size_t left = n << PAGE_SHIFT;
    while (left) {
        ssize_t r = copy_file_range(from, &in, to, &out, left, 0);
        if (r <= 0)
            break;
        left -= (size_t)r;
    }
    while (left) {
        size_t chunk = left < sizeof buf ? left : sizeof buf;
        ssize_t r = pread(from, buf, chunk, (off_t)in);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || pwrite(to, buf, (size_t)r, (off_t)out) != r)
            return -1;
        in += r;
        out += r;
        left -= (size_t)r;
    }
    return 0;
}

static int swap_snapshot(struct swap_info_struct *si)
{
    int fd = vm_os_memfd("kslab-swap", si->max << PAGE_SHIFT);
    if (fd < 0)
        return -1;
    for (unsigned long off = 1; off < si->max;) {
        if (!si->swap_map[off]) {
            off++;
            continue;
        }
        unsigned long start = off;
        while (off < si->max && si->swap_map[off])
            off++;
        if (copy_slots(si->fd, fd, start, off - start) != 0)
            goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

static void swap_fork_snapshot(void)
{
    for (int i = 0; i < MAX_SWAPFILES; i++)
        fork_swap_fd[i] =
            (swap_info[i].flags & SWP_USED) ? swap_snapshot(&swap_info[i]) : -1;
}

static void swap_fork_switch(int child)
{
    for (int i = 0; i < MAX_SWAPFILES; i++) {
        int fd = fork_swap_fd[i];
        fork_swap_fd[i] = -1;
        if (!(swap_info[i].flags & SWP_USED))
            continue;
        if (!child) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        close(swap_info[i].fd);
        swap_info[i].fd = fd; /* -1: every swap I/O fails, nothing shared */
    }
}

/* ---- mkswap, swapon ---- */

static int find_area(dev_t dev, ino_t ino)
{
    for (int i = 0; i < MAX_SWAPFILES; i++)
        if ((swap_info[i].flags & SWP_USED) && swap_info[i].dev == dev &&
            swap_info[i].ino == ino)
            return i;
    return -1;
}

/**
 * mkswap - make a swap file of @pages pages (header included) at @path.
 * The file is allocated on disk (not sparse).  Returns 0, -EINVAL for a
 * size below SWAP_MIN_PAGES or above 2^24 pages, -EBUSY when @path is an
 * active swap area, or the -errno of the file system.
 */
KSLAB_API int mkswap(const char *path, unsigned long pages)
{
    struct stat st;
    if (!path || pages < SWAP_MIN_PAGES || pages > SWP_MAX_OFFSET)
        return -EINVAL;
    vm_mm_fork_register(); /* h_lock and vm_swap_lock: lib/fork.c */
    if (stat(path, &st) == 0) {
        pthread_mutex_lock(&vm_swap_lock);
        int on = find_area(st.st_dev, st.st_ino) >= 0;
        pthread_mutex_unlock(&vm_swap_lock);
        if (on)
            return -EBUSY;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    static union swap_header h; /* one page: not on the stack */
    pthread_mutex_lock(&h_lock);
    memset(&h, 0, sizeof h);
    h.info.version = 1;
    h.info.last_page = (uint32_t)(pages - 1);
    memcpy(h.magic.magic, SWAP_MAGIC, 10);
    int r = posix_fallocate(fd, 0, (off_t)(pages << PAGE_SHIFT));
    r = r ? -r : 0;
    if (!r && pwrite(fd, &h, PAGE_SIZE, 0) != (ssize_t)PAGE_SIZE)
        r = -EIO;
    pthread_mutex_unlock(&h_lock);
    if (!r && fsync(fd) != 0)
        r = -errno;
    close(fd);
    return r;
}

/* Opens and checks a swap file; returns its fd and usable size in max. */
static int swap_open(const char *path, struct stat *st, unsigned long *max)
{
    static union swap_header h;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = -EINVAL;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) ||
        st->st_size < (off_t)(SWAP_MIN_PAGES * PAGE_SIZE))
        goto fail;
    pthread_mutex_lock(&h_lock);
    if (pread(fd, &h, PAGE_SIZE, 0) != (ssize_t)PAGE_SIZE ||
        memcmp(h.magic.magic, SWAP_MAGIC, 10) != 0 || h.info.version != 1 ||
        h.info.nr_badpages != 0 || h.info.last_page < SWAP_MIN_PAGES - 1 ||
        (off_t)(((unsigned long)h.info.last_page + 1) << PAGE_SHIFT) >
            st->st_size) {
        pthread_mutex_unlock(&h_lock);
        goto fail;
    }
    *max = (unsigned long)h.info.last_page + 1;
    pthread_mutex_unlock(&h_lock);
    if (*max > SWP_MAX_OFFSET)
        *max = SWP_MAX_OFFSET;
    return fd;
fail:
    close(fd);
    return r;
}

/**
 * sys_swapon - start swapping to the swap file at @path.
 * @swap_flags: SWAP_FLAG_PREFER | prio for an explicit priority (0..32767);
 * without it each new area gets a priority below every earlier one.
 * Returns 0; -EINVAL when the file is not a swap area (bad magic or
 * version, bad blocks listed, header larger than the file, fewer than
 * SWAP_MIN_PAGES pages) or the flags are bad; -EBUSY when it is already
 * on; -EPERM when MAX_SWAPFILES areas are on; -errno of open().  On error
 * nothing has changed.  Process context, no lock held.
 */
KSLAB_API int sys_swapon(const char *path, int swap_flags)
{
    struct stat st;
    unsigned long max = 0;
    if (!path || (swap_flags & ~(SWAP_FLAG_PREFER | SWAP_FLAG_PRIO_MASK)))
        return -EINVAL;
    vm_mm_fork_register();
    if (strlen(path) >= PATH_MAX)
        return -ENAMETOOLONG;
    int fd = swap_open(path, &st, &max);
    if (fd < 0)
        return fd;
    size_t mapsz = PAGE_ALIGN(max * sizeof(unsigned short));
    unsigned short *map = vm_os_alloc(mapsz, 0, 0);
    if (!map) {
        close(fd);
        return -ENOMEM;
    }
    int r = 0, type = -1;
    pthread_mutex_lock(&vm_swap_lock);
    if (find_area(st.st_dev, st.st_ino) >= 0) {
        r = -EBUSY;
        goto out;
    }
    for (int i = 0; i < MAX_SWAPFILES && type < 0; i++)
        if (!swap_info[i].flags)
            type = i;
    if (type < 0) {
        r = -EPERM;
        goto out;
    }
    struct swap_info_struct *si = &swap_info[type];
    memset(si, 0, sizeof *si);
    strcpy(si->path, path);
    si->fd = fd;
    si->dev = st.st_dev;
    si->ino = st.st_ino;
    si->swap_map = map;
    si->max = max;
    si->cluster_next = 1;
    si->prio = (swap_flags & SWAP_FLAG_PREFER)
                   ? (swap_flags & SWAP_FLAG_PRIO_MASK)
                   : --least_priority;
    si->flags = SWP_WRITEOK;
out:
    pthread_mutex_unlock(&vm_swap_lock);
    if (r) {
        vm_os_free(map, mapsz);
        close(fd);
    }
    return r;
}

/* ---- the validator ---- */

/* A slot held by shared anonymous memory counts like a pte. */
static void count_shmem_slot(swp_entry_t e, void *arg)
{
    unsigned short **cnt = arg;
    if (SWP_TYPE(e) >= MAX_SWAPFILES || !cnt[SWP_TYPE(e)] ||
        SWP_OFFSET(e) >= swap_info[SWP_TYPE(e)].max)
        kslab_die("vm_check_swap(): shared memory holds bad entry %lx", e.val);
    cnt[SWP_TYPE(e)][SWP_OFFSET(e)]++;
}

/* Counts, into cnt[type][off], every pte of every mm holding a swap entry,
 * and every slot of shared anonymous memory.  Takes each mm's mmap_sem in
 * turn, then pagecache_lock. */
static void count_swap_ptes(unsigned short **cnt)
{
    vm_shmem_for_each_swap(count_shmem_slot, cnt);
    for (struct mm_struct *mm = vm_mmlist_next(NULL); mm;
         mm = vm_mmlist_next(mm)) {
        pthread_mutex_lock(&mm->mmap_sem);
        for (struct vm_area_struct *v = mm->mmap; v; v = v->vm_next)
            for (unsigned long a = v->vm_start; a < v->vm_end;) {
                pte_t *pte = vm_pte_lookup(mm, a);
                if (!pte) {
                    a = (a + PMD_SIZE) & PMD_MASK;
                    continue;
                }
                swp_entry_t e = pte_to_swp_entry(*pte);
                if (pte_is_swap(*pte) && SWP_TYPE(e) < MAX_SWAPFILES &&
                    cnt[SWP_TYPE(e)] &&
                    SWP_OFFSET(e) < swap_info[SWP_TYPE(e)].max)
                    cnt[SWP_TYPE(e)][SWP_OFFSET(e)]++;
                else if (pte_is_swap(*pte))
                    kslab_die("vm_check_swap(): pte at %lx holds bad entry %lx",
                              a, e.val);
                a += PAGE_SIZE;
            }
        pthread_mutex_unlock(&mm->mmap_sem);
    }
}

/*
 * vm_check_swap: every swap_map count is the number of ptes holding the
 * entry plus one when its page is in the swap cache, and inuse_pages the
 * number of nonzero counts.  For tests and debug builds, on a quiet
 * system (no fault or reclaim running); aborts on a mismatch.
 */
void vm_check_swap(void)
{
    unsigned short *cnt[MAX_SWAPFILES] = {0};
    size_t sz[MAX_SWAPFILES] = {0};
    pthread_mutex_lock(&vm_swap_lock);
    for (int i = 0; i < MAX_SWAPFILES; i++)
        if (swap_info[i].flags & SWP_USED)
            sz[i] = PAGE_ALIGN(swap_info[i].max * sizeof(unsigned short));
    pthread_mutex_unlock(&vm_swap_lock);
    for (int i = 0; i < MAX_SWAPFILES; i++)
        if (sz[i]) {
            cnt[i] = vm_os_alloc(sz[i], 0, 0);
            if (!cnt[i])
                kslab_die("vm_check_swap(): out of memory");
        }
    count_swap_ptes(cnt);
    pthread_mutex_lock(&vm_swap_lock);
    for (int i = 0; i < MAX_SWAPFILES; i++) {
        struct swap_info_struct *si = &swap_info[i];
        if (!cnt[i] || !(si->flags & SWP_USED))
            continue;
        unsigned long inuse = 0;
        for (unsigned long off = 1; off < si->max; off++) {
            unsigned long want = cnt[i][off];
            if (__lookup_swap_cache(SWP_ENTRY(i, off)))
                want++;
            if (si->swap_map[off] != want && si->swap_map[off] < SWAP_MAP_MAX)
                kslab_die("vm_check_swap(): slot %lu of area %d counts %u, "
                          "ptes and cache say %lu",
                          off, i, si->swap_map[off], want);
            inuse += si->swap_map[off] != 0;
        }
        if (si->swap_map[0] || inuse != si->inuse_pages)
            kslab_die(
                "vm_check_swap(): area %d has %lu slots in use, counts %lu", i,
                inuse, si->inuse_pages);
    }
    pthread_mutex_unlock(&vm_swap_lock);
    for (int i = 0; i < MAX_SWAPFILES; i++)
        if (cnt[i])
            vm_os_free(cnt[i], sz[i]);
}

/* ---- swapoff ---- */

/* Brings back every page of area type mapped in mm.  mmap_sem held. */
static int unuse_mm(struct mm_struct *mm, unsigned int type)
{
    for (struct vm_area_struct *v = mm->mmap; v; v = v->vm_next) {
        for (unsigned long a = v->vm_start; a < v->vm_end;) {
            pte_t *pte = vm_pte_lookup(mm, a);
            if (!pte) {
                a = (a + PMD_SIZE) & PMD_MASK;
                continue;
            }
            if (pte_is_swap(*pte) && SWP_TYPE(pte_to_swp_entry(*pte)) == type) {
                swp_entry_t entry = pte_to_swp_entry(*pte);
                struct page *page = read_swap_cache_async(mm, entry, 0);
                if (!page)
                    return -ENOMEM;
                int r = vm_swap_pte_in(mm, v, a, pte, page, entry, 0);
                if (r < 0)
                    return -ENOMEM;
            }
            a += PAGE_SIZE;
        }
    }
    return 0;
}

/* Slots of si that are used and whose page is not in the swap cache: the
 * frames a swapoff needs.  vm_swap_lock held. */
static unsigned long pages_to_read(struct swap_info_struct *si, int type)
{
    unsigned long n = 0;
    for (unsigned long off = 1; off < si->max; off++)
        if (si->swap_map[off] && !__lookup_swap_cache(SWP_ENTRY(type, off)))
            n++;
    return n;
}

/* try_to_unuse: every mm's ptes of the area are made present again, then
 * the area's pages leave the swap cache.  Returns 0 or -errno. */
static int try_to_unuse(int type)
{
    struct swap_info_struct *si = &swap_info[type];
    for (int pass = 0; pass < 4; pass++) {
        for (struct mm_struct *mm = vm_mmlist_next(NULL); mm;
             mm = vm_mmlist_next(mm)) {
            pthread_mutex_lock(&mm->mmap_sem);
            int r = unuse_mm(mm, (unsigned int)type);
            pthread_mutex_unlock(&mm->mmap_sem);
            if (r) {
                mmput(mm); /* the reference vm_mmlist_next took */
                return r;
            }
        }
        /* shared anonymous memory keeps its slots in its objects */
        int r = vm_shmem_unuse((unsigned int)type);
        if (r)
            return r;
        pthread_mutex_lock(&vm_swap_lock);
        for (unsigned long off = 1; off < si->max; off++) {
            if (!si->swap_map[off])
                continue;
            struct page *page = __lookup_swap_cache(SWP_ENTRY(type, off));
            if (!page)
                continue;
            /* every pte now maps the page itself: the slot only keeps the
             * cache's copy */
            if (si->swap_map[off] == 1)
                __delete_from_swap_cache(page);
        }
        unsigned long left = si->inuse_pages;
        pthread_mutex_unlock(&vm_swap_lock);
        if (!left)
            return 0;
    }
    return -EBUSY;
}

/**
 * sys_swapoff - stop swapping to the area at @path: every page of it is
 * read back into user memory and the area is removed.  Returns 0;
 * -EINVAL when @path is not an active area; -ENOMEM, changing nothing,
 * when user memory has too few free frames to hold the area's pages;
 * -EBUSY when pages kept arriving (the area is left on).  Process
 * context, no lock held.
 */
KSLAB_API int sys_swapoff(const char *path)
{
    struct stat st;
    if (!path)
        return -EINVAL;
    if (stat(path, &st) != 0)
        return -errno;
    pthread_mutex_lock(&vm_swap_lock);
    int type = find_area(st.st_dev, st.st_ino);
    if (type < 0 || (swap_info[type].flags & SWP_WRITEOK) != SWP_WRITEOK) {
        pthread_mutex_unlock(&vm_swap_lock);
        return -EINVAL;
    }
    struct swap_info_struct *si = &swap_info[type];
    unsigned long need = pages_to_read(si, type);
    /* keep pages_min in reserve, as 2.4's vm_enough_memory keeps some;
     * an area with nothing to read back needs no memory at all */
    if (need && need + vm_pages_min() > vm_free_user_frames()) {
        pthread_mutex_unlock(&vm_swap_lock);
        return -ENOMEM;
    }
    si->flags = SWP_USED; /* no new pages go there */
    pthread_mutex_unlock(&vm_swap_lock);

    int r = try_to_unuse(type);
    pthread_mutex_lock(&vm_swap_lock);
    if (r) {
        si->flags = SWP_WRITEOK;
        pthread_mutex_unlock(&vm_swap_lock);
        return r;
    }
    unsigned short *map = si->swap_map;
    size_t mapsz = PAGE_ALIGN(si->max * sizeof(unsigned short));
    int fd = si->fd;
    memset(si, 0, sizeof *si);
    pthread_mutex_unlock(&vm_swap_lock);
    vm_os_free(map, mapsz);
    close(fd);
    return 0;
}
