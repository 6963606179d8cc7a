/*
 * vm/mm/vma.c — the set of vmas of an mm: the sorted list, the AVL tree
 * that 2.4.0 builds once an mm has AVL_MIN_MAP_COUNT vmas (mm/mmap_avl.c)
 * and the mmap_cache in front of both; the lookups (find_vma,
 * find_vma_prev), insert_vm_struct and unlinking, splitting and merging of
 * vmas, the vm_area_struct cache, and vm_check_mm, the validator of an mm
 * (list, tree, rss against the page tables).  2.4 keeps this in mm/mmap.c
 * beside the system calls; here mmap.c holds the calls that change an
 * address space (do_mmap, do_munmap, brk, the limits) and this file the
 * structure they change, as current Linux's mm/vma.c.
 *
 * Locking: all callers hold mm->mmap_sem, except find_vma and
 * find_vma_prev, which take it.  The tree and the list always hold the
 * same vmas; the mmap_cache is a hint, cleared whenever a vma leaves.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "lib/init.h"
#include "vm/mm/mm.h"

static kmem_cache_t *vm_area_cachep;
static struct kslab_once vma_once = KSLAB_ONCE_INIT; /* lib/init.h */

static void vma_cache_init(void)
{
    vm_area_cachep =
        kmem_cache_create("vm_area_struct", sizeof(struct vm_area_struct), 0,
                          SLAB_HWCACHE_ALIGN, NULL, NULL);
}

struct vm_area_struct *vm_area_alloc(void)
{
    kslab_once(&vma_once, vma_cache_init);
    if (!vm_area_cachep)
        return NULL;
    struct vm_area_struct *vma = kmem_cache_alloc(vm_area_cachep, GFP_KERNEL);
    if (vma) {
        memset(vma, 0, sizeof(*vma));
        vma->vm_file = -1;
    }
    return vma;
}

void vm_area_free(struct vm_area_struct *vma)
{
    if (vma->vm_file >= 0)
        close(vma->vm_file);
    kmem_cache_free(vm_area_cachep, vma);
}

/* ---- the AVL tree (keyed by vm_start; vmas never overlap, so moving a
 * vma's bounds in place keeps the order) ---- */

static int avl_h(struct vm_area_struct *v)
{
    return v ? v->vm_avl_height : 0;
}

static void avl_fix(struct vm_area_struct *v)
{
    int l = avl_h(v->vm_avl_left), r = avl_h(v->vm_avl_right);
    v->vm_avl_height = 1 + (l > r ? l : r);
}

static struct vm_area_struct *avl_rot_right(struct vm_area_struct *v)
{
    struct vm_area_struct *l = v->vm_avl_left;
    v->vm_avl_left = l->vm_avl_right;
    l->vm_avl_right = v;
    avl_fix(v);
    avl_fix(l);
    return l;
}

static struct vm_area_struct *avl_rot_left(struct vm_area_struct *v)
{
    struct vm_area_struct *r = v->vm_avl_right;
    v->vm_avl_right = r->vm_avl_left;
    r->vm_avl_left = v;
    avl_fix(v);
    avl_fix(r);
    return r;
}

static struct vm_area_struct *avl_balance(struct vm_area_struct *v)
{
    avl_fix(v);
    int b = avl_h(v->vm_avl_left) - avl_h(v->vm_avl_right);
    if (b > 1) {
        struct vm_area_struct *l = v->vm_avl_left;
        if (avl_h(l->vm_avl_left) < avl_h(l->vm_avl_right))
            v->vm_avl_left = avl_rot_left(l);
        return avl_rot_right(v);
    }
    if (b < -1) {
        struct vm_area_struct *r = v->vm_avl_right;
        if (avl_h(r->vm_avl_right) < avl_h(r->vm_avl_left))
            v->vm_avl_right = avl_rot_right(r);
        return avl_rot_left(v);
    }
    return v;
}

static struct vm_area_struct *avl_insert(struct vm_area_struct *root,
                                         struct vm_area_struct *n)
{
    if (!root) {
        n->vm_avl_left = n->vm_avl_right = NULL;
        n->vm_avl_height = 1;
        return n;
    }
    if (n->vm_start < root->vm_start)
        root->vm_avl_left = avl_insert(root->vm_avl_left, n);
    else
        root->vm_avl_right = avl_insert(root->vm_avl_right, n);
    return avl_balance(root);
}

static struct vm_area_struct *avl_remove_min(struct vm_area_struct *root,
                                             struct vm_area_struct **min)
{
    if (!root->vm_avl_left) {
        *min = root;
        return root->vm_avl_right;
    }
    root->vm_avl_left = avl_remove_min(root->vm_avl_left, min);
    return avl_balance(root);
}

static struct vm_area_struct *avl_remove(struct vm_area_struct *root,
                                         struct vm_area_struct *n)
{
    if (!root)
        kslab_die("avl_remove(): vma %p not in its mm's tree", (void *)n);
    if (root == n) {
        struct vm_area_struct *l = n->vm_avl_left, *r = n->vm_avl_right, *m;
        if (!r)
            return l;
        r = avl_remove_min(r, &m);
        m->vm_avl_left = l;
        m->vm_avl_right = r;
        return avl_balance(m);
    }
    if (n->vm_start < root->vm_start)
        root->vm_avl_left = avl_remove(root->vm_avl_left, n);
    else
        root->vm_avl_right = avl_remove(root->vm_avl_right, n);
    return avl_balance(root);
}

/* build_mmap_avl: the tree from the list, when the map count reaches
 * AVL_MIN_MAP_COUNT. */
static void build_mmap_avl(struct mm_struct *mm)
{
    mm->mmap_avl = NULL;
    for (struct vm_area_struct *v = mm->mmap; v; v = v->vm_next)
        mm->mmap_avl = avl_insert(mm->mmap_avl, v);
}

/* ---- lookups ---- */

struct vm_area_struct *__find_vma(struct mm_struct *mm, unsigned long addr)
{
    struct vm_area_struct *v = mm->mmap_cache;
    if (v && v->vm_start <= addr && addr < v->vm_end)
        return v;
    struct vm_area_struct *best = NULL;
    if (mm->mmap_avl) {
        v = mm->mmap_avl;
        while (v) {
            if (v->vm_end > addr) {
                best = v;
                if (v->vm_start <= addr)
                    break;
                v = v->vm_avl_left;
            } else {
                v = v->vm_avl_right;
            }
        }
    } else {
        for (v = mm->mmap; v; v = v->vm_next)
            if (v->vm_end > addr) {
                best = v;
                break;
            }
    }
    if (best)
        mm->mmap_cache = best;
    return best;
}

struct vm_area_struct *__find_vma_prev(struct mm_struct *mm, unsigned long addr,
                                       struct vm_area_struct **pprev)
{
    struct vm_area_struct *prev = NULL, *v;
    if (mm->mmap_avl) {
        for (v = mm->mmap_avl; v;) {
            if (v->vm_end <= addr) {
                prev = v;
                v = v->vm_avl_right;
            } else {
                v = v->vm_avl_left;
            }
        }
    } else {
        for (v = mm->mmap; v && v->vm_end <= addr; v = v->vm_next)
            prev = v;
    }
    *pprev = prev;
    return prev ? prev->vm_next : mm->mmap;
}

KSLAB_API struct vm_area_struct *find_vma(struct mm_struct *mm,
                                          unsigned long addr)
{
    if (!mm)
        return NULL;
    pthread_mutex_lock(&mm->mmap_sem);
    struct vm_area_struct *v = __find_vma(mm, addr);
    pthread_mutex_unlock(&mm->mmap_sem);
    return v;
}

KSLAB_API struct vm_area_struct *find_vma_prev(struct mm_struct *mm,
                                               unsigned long addr,
                                               struct vm_area_struct **pprev)
{
    if (!mm || !pprev)
        return NULL;
    pthread_mutex_lock(&mm->mmap_sem);
    struct vm_area_struct *v = __find_vma_prev(mm, addr, pprev);
    pthread_mutex_unlock(&mm->mmap_sem);
    return v;
}

/* ---- insertion, removal, split, merge ---- */

void insert_vm_struct(struct mm_struct *mm, struct vm_area_struct *vma)
{
    struct vm_area_struct *prev;
    struct vm_area_struct *next = __find_vma_prev(mm, vma->vm_start, &prev);
    if (next && next->vm_start < vma->vm_end)
        kslab_die("insert_vm_struct(): %lx-%lx overlaps %lx-%lx", vma->vm_start,
                  vma->vm_end, next->vm_start, next->vm_end);
    vma->vm_mm = mm;
    vma->vm_next = next;
    if (prev)
        prev->vm_next = vma;
    else
        mm->mmap = vma;
    mm->map_count++;
    if (mm->mmap_avl)
        mm->mmap_avl = avl_insert(mm->mmap_avl, vma);
    else if (mm->map_count >= AVL_MIN_MAP_COUNT)
        build_mmap_avl(mm);
}

void vm_unlink_vma(struct mm_struct *mm, struct vm_area_struct *vma)
{
    struct vm_area_struct *prev;
    __find_vma_prev(mm, vma->vm_start, &prev);
    if ((prev ? prev->vm_next : mm->mmap) != vma)
        kslab_die("vm_unlink_vma(): vma %lx-%lx not in its mm", vma->vm_start,
                  vma->vm_end);
    if (prev)
        prev->vm_next = vma->vm_next;
    else
        mm->mmap = vma->vm_next;
    if (mm->mmap_avl)
        mm->mmap_avl = avl_remove(mm->mmap_avl, vma);
    mm->map_count--;
    mm->mmap_cache = NULL;
}

/* vm_copy_vma: dst becomes a copy of src (a split's other half, a fork's
 * vma) that is on no share list yet.  src's vm_next_share/vm_pprev_share
 * are not read: they belong to its mapping's share list, which a vma of
 * another mm joining or leaving changes under pagecache_lock while src's
 * mm holds only its own mmap_sem.  The share links are the struct's last
 * fields, so everything before them is copied as it is. */
void vm_copy_vma(struct vm_area_struct *dst, const struct vm_area_struct *src)
{
    _Static_assert(offsetof(struct vm_area_struct, vm_pprev_share) +
                           sizeof(src->vm_pprev_share) ==
                       sizeof(struct vm_area_struct),
                   "the share links end struct vm_area_struct");
    _Static_assert(offsetof(struct vm_area_struct, vm_next_share) +
                           sizeof(src->vm_next_share) ==
                       offsetof(struct vm_area_struct, vm_pprev_share),
                   "the two share links are adjacent");
    memcpy(dst, src, offsetof(struct vm_area_struct, vm_next_share));
    dst->vm_next_share = NULL;
    dst->vm_pprev_share = NULL;
}

int vm_dup_vma_file(struct vm_area_struct *dst,
                    const struct vm_area_struct *src)
{
    dst->vm_file = -1;
    if (src->vm_file < 0)
        return 0;
    dst->vm_file = fcntl(src->vm_file, F_DUPFD_CLOEXEC, 0);
    return dst->vm_file < 0 ? -ENFILE : 0;
}

/* Splits vma at addr (inside it): vma keeps the head, new (preallocated)
 * becomes the tail and is opened like a fork would open it. */
int vm_split_vma(struct mm_struct *mm, struct vm_area_struct *vma,
                 unsigned long addr, struct vm_area_struct *new)
{
    vm_copy_vma(new, vma);
    if (vm_dup_vma_file(new, vma) != 0)
        return -ENFILE;
    new->vm_start = addr;
    new->vm_pgoff += (addr - vma->vm_start) >> PAGE_SHIFT;
    vma->vm_end = addr;
    if (new->vm_ops &&new->vm_ops->open)
        new->vm_ops->open(new);
    insert_vm_struct(mm, new);
    return 0;
}

static int can_merge(struct vm_area_struct *a, struct vm_area_struct *b)
{
    return a && b && a->vm_end == b->vm_start && a->vm_flags == b->vm_flags &&
           !a->vm_ops && !b->vm_ops && a->vm_file < 0 && b->vm_file < 0 &&
           !vm_is_driver(a) && !vm_is_driver(b);
}

/* Merges vma with compatible anonymous neighbours (vma may be freed). */
void vm_merge_around(struct mm_struct *mm, struct vm_area_struct *vma)
{
    struct vm_area_struct *prev, *next = vma->vm_next;
    __find_vma_prev(mm, vma->vm_start, &prev);
    if (can_merge(vma, next)) {
        vm_unlink_vma(mm, next);
        vma->vm_end = next->vm_end;
        vm_area_free(next);
    }
    if (can_merge(prev, vma)) {
        vm_unlink_vma(mm, vma);
        prev->vm_end = vma->vm_end;
        vm_area_free(vma);
    }
}

/* ---- validator ---- */

static int avl_check(struct vm_area_struct *v, struct vm_area_struct **last,
                     int *count)
{
    if (!v)
        return 0;
    int l = avl_check(v->vm_avl_left, last, count);
    if (*last && (*last)->vm_next != v)
        kslab_die("vm_check_mm(): tree order differs from list at %lx",
                  v->vm_start);
    *last = v;
    (*count)++;
    int r = avl_check(v->vm_avl_right, last, count);
    int h = 1 + (l > r ? l : r);
    if (h != v->vm_avl_height || l - r > 1 || r - l > 1)
        kslab_die("vm_check_mm(): AVL node %lx unbalanced", v->vm_start);
    return h;
}

void vm_check_mm(struct mm_struct *mm)
{
    int n = 0;
    unsigned long end = 0;
    for (struct vm_area_struct *v = mm->mmap; v; v = v->vm_next, n++) {
        if (v->vm_start < end || v->vm_start >= v->vm_end ||
            v->vm_end > TASK_SIZE || (v->vm_start | v->vm_end) & ~PAGE_MASK)
            kslab_die("vm_check_mm(): bad vma %lx-%lx", v->vm_start, v->vm_end);
        if (v->vm_mm != mm)
            kslab_die("vm_check_mm(): vma %lx has another mm", v->vm_start);
        end = v->vm_end;
    }
    if (n != mm->map_count)
        kslab_die("vm_check_mm(): map_count %d, list has %d", mm->map_count, n);
    if (mm->mmap_avl) {
        struct vm_area_struct *last = NULL;
        int count = 0;
        avl_check(mm->mmap_avl, &last, &count);
        if (count != n)
            kslab_die("vm_check_mm(): tree has %d vmas, list %d", count, n);
    }
    /* rss: present ptes that are not the ZERO_PAGE (swap entries are not) */
    unsigned long rss = 0;
    for (int i = 0; i < (int)USER_PTRS_PER_PGD; i++) {
        if (!mm->pgd[i].pgd)
            continue;
        for (int j = 0; j < PTRS_PER_PMD; j++) {
            pte_t *pt = mm->pgd[i].pgd[j].pmd;
            if (!pt)
                continue;
            for (int k = 0; k < PTRS_PER_PTE; k++) {
                if (pte_none(pt[k]))
                    continue;
                unsigned long a = ((unsigned long)i << PGDIR_SHIFT) |
                                  ((unsigned long)j << PMD_SHIFT) |
                                  ((unsigned long)k << PAGE_SHIFT);
                struct vm_area_struct *v = __find_vma(mm, a);
                if (!v || v->vm_start > a)
                    kslab_die("vm_check_mm(): pte at %lx outside every vma", a);
                if (pte_present(pt[k]) && pte_pfn(pt[k]) != ZERO_PAGE_PFN)
                    rss++;
            }
        }
    }
    if (rss != mm->rss)
        kslab_die("vm_check_mm(): rss %lu, page tables say %lu", mm->rss, rss);
}
