/*
 * slab/leaks.c — KSLAB_DEBUG=leaks: the conservative leak search of
 * kslab_leak_check() and at exit (libumem's ::findleaks, LeakSanitizer's
 * report), and what it must know of kslab's own memory: the mappings of
 * the debugging machinery and the tables it is told of
 * (slab_debug_exclude), and the stack of each thread that made blocks
 * (a dead thread's stack is no root).
 *
 * The live blocks are the audit records (slab/audit.c), copied into an
 * array sorted by address (struct search) with a hash index by page
 * (struct pgent); the roots are the readable and writable mappings of
 * /proc/self/maps less kslab's heap; the other threads are stopped while
 * the roots and blocks are scanned (slab/stop.c).  The search's memory is
 * mapped (slab_debug_map), never malloc'ed.
 *
 * Locking: leak_lock makes one search at a time; the snapshot takes each
 * audit stripe lock in turn, alone.  exclude_lock is a leaf.  The thread
 * marks are atomics.
 */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kslab/kslab.h>

#include "lib/compiler.h"
#include "lib/options.h"
#include "lib/report.h"
#include "slab/debug_internal.h"
#include "slab/slab_internal.h"
#include "vm/frames/os.h"
#include "vm/frames/page.h"

static int leaks_log_fd = -1, leaks_log_owned;

int slab_leaks_log_fd(void)
{
    if (leaks_log_fd >= 0)
        return leaks_log_fd;
    if (!kslab_opt.leaks_log[0])
        return leaks_log_fd = kslab_stderr_fd();
    char path[PATH_MAX + 16];
    kslab_snprintf(path, sizeof path, "%s.%d", kslab_opt.leaks_log,
                   vm_os_getpid());
    leaks_log_fd =
        open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
    leaks_log_owned = leaks_log_fd >= 0;
    if (leaks_log_fd < 0) {
        kslab_warn("KSLAB_LEAKS_LOG: cannot open %s (errno %d)", path, errno);
        leaks_log_fd = kslab_stderr_fd();
    }
    return leaks_log_fd;
}

void *slab_debug_map(size_t len)
{
    void *p = vm_os_alloc(len, 0, 1);
    if (!p)
        return NULL;
    slab_debug_exclude(p, len);
    return p;
}

static void debug_unmap(void *p, size_t len)
{
    slab_debug_exclude(p, 0);
    vm_os_free(p, len);
}

/* ---- what the leak search does not scan, and whose stack is dead ---- */

#define EXCLUDE_MAX 64
static struct {
    uintptr_t lo, hi;
} excluded[EXCLUDE_MAX];
static pthread_mutex_t exclude_lock = PTHREAD_MUTEX_INITIALIZER;

void slab_debug_exclude(const void *addr, size_t len)
{
    uintptr_t a = (uintptr_t)addr;
    pthread_mutex_lock(&exclude_lock);
    for (int i = 0; i < EXCLUDE_MAX; i++) {
        if (len && !excluded[i].lo) {
            excluded[i].lo = a;
            excluded[i].hi = a + len;
            break;
        }
        if (!len && excluded[i].lo == a) {
            excluded[i].lo = excluded[i].hi = 0;
            break;
        }
    }
    pthread_mutex_unlock(&exclude_lock);
}

/* A stack address of each thread that made a block (the stack mapping
 * holding it is the thread's); live cleared when the thread exits, so
 * the stack glibc keeps for reuse is no longer a root. */
#define THREAD_MARKS 1024
#define TCB_BYTES 4096 /* glibc's struct pthread, and some */
static struct {
    uintptr_t sp, tp; /* a stack address; the thread pointer (TCB) */
    int live;
} thread_marks[THREAD_MARKS];
static __thread int thread_mark_slot __attribute__((tls_model("initial-exec")));

void slab_leaks_thread_mark(void)
{
    if (thread_mark_slot)
        return;
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    for (int i = 0; i < THREAD_MARKS; i++) {
        int dead = 0;
        if (__atomic_load_n(&thread_marks[i].live, __ATOMIC_RELAXED) ||
            !__atomic_compare_exchange_n(&thread_marks[i].live, &dead, 1, 0,
                                         __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            continue;
        __atomic_store_n(&thread_marks[i].tp,
                         (uintptr_t)__builtin_thread_pointer(),
                         __ATOMIC_RELAXED);
        __atomic_store_n(&thread_marks[i].sp, sp, __ATOMIC_RELEASE);
        thread_mark_slot = i + 1;
        return;
    }
    thread_mark_slot = -1; /* table full: this stack stays a root */
}

void slab_debug_thread_exit(void)
{
    if (thread_mark_slot > 0)
        __atomic_store_n(&thread_marks[thread_mark_slot - 1].live, 0,
                         __ATOMIC_RELEASE);
    thread_mark_slot = -1;
}

/* ---- the leak search ---- */

/* A live block in the search: sorted by address. */
struct blk {
    uintptr_t addr, end;
    uint64_t ns; /* the allocation's time: the same block still? */
    int mark;    /* BLK_LEAKED, BLK_REACHED, BLK_INDIRECT */
};
enum { BLK_LEAKED, BLK_REACHED, BLK_INDIRECT };

struct search {
    struct blk *blk;
    size_t n, cap;
    uint32_t *stack; /* blocks to scan */
    size_t top;
    uintptr_t lo, hi; /* lowest block start, highest block end */
    struct pgent *pg; /* the page index: open addressing, pg_mask + 1 */
    size_t pg_mask;
};

/* The page index: for each page that a block overlaps, the blocks that
 * overlap it, [first, last) of the sorted array.  A word is looked up by
 * its page (one probe, mostly) and a search among the few blocks of that
 * page, not a binary search of every live block (20 steps and as many
 * cache misses for a million blocks); a word whose page holds no block is
 * rejected by the probe. */
struct pgent {
    uintptr_t pfn; /* page number + 1; 0: empty */
    uint32_t first, last;
};

static inline size_t pg_hash(uintptr_t pfn, size_t mask)
{
    return (size_t)((pfn * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
}

static struct pgent *pg_slot(const struct search *s, uintptr_t pfn)
{
    size_t h = pg_hash(pfn, s->pg_mask);
    while (s->pg[h].pfn && s->pg[h].pfn != pfn + 1)
        h = (h + 1) & s->pg_mask;
    return &s->pg[h];
}

/* Index the sorted blocks by page (0, or -ENOMEM: then none is). */
static int pg_build(struct search *s)
{
    size_t pages = 0;
    for (size_t i = 0; i < s->n; i++)
        pages += ((s->blk[i].end - 1) >> PAGE_SHIFT) -
                 (s->blk[i].addr >> PAGE_SHIFT) + 1;
    size_t size = 1024;
    while (size < 2 * pages)
        size *= 2;
    s->pg = slab_debug_map(size * sizeof *s->pg);
    if (!s->pg)
        return -ENOMEM;
    s->pg_mask = size - 1;
    for (size_t i = 0; i < s->n; i++) {
        uintptr_t p = s->blk[i].addr >> PAGE_SHIFT;
        uintptr_t e = (s->blk[i].end - 1) >> PAGE_SHIFT;
        for (; p <= e; p++) {
            struct pgent *g = pg_slot(s, p);
            if (!g->pfn) {
                g->pfn = p + 1;
                g->first = (uint32_t)i;
            }
            g->last = (uint32_t)i + 1;
        }
    }
    return 0;
}

/* Index of the block holding w, or (size_t)-1. */
static inline size_t blk_find(const struct search *s, uintptr_t w)
{
    const struct pgent *g = pg_slot(s, w >> PAGE_SHIFT);
    if (!g->pfn)
        return (size_t)-1;
    size_t lo = g->first, hi = g->last;
    while (lo < hi) { /* the first block ending above w */
        size_t mid = (lo + hi) / 2;
        if (s->blk[mid].end <= w)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == g->last || w < s->blk[lo].addr)
        return (size_t)-1;
    return lo;
}

/* Radix sort by address, 16 bits a pass (user addresses are below
 * 2^48): three linear passes where a comparison sort of a million blocks
 * takes 20 dependent steps a block.
 * No malloc (glibc's qsort may allocate): the buffer is a mapping. */
#define BLK_RADIX 16
static int blk_sort(struct blk *a, size_t n)
{
    size_t len = n * sizeof *a, cnt_len = (1UL << BLK_RADIX) * sizeof(size_t);
    struct blk *tmp = slab_debug_map(len + cnt_len);
    if (!tmp)
        return -ENOMEM;
    size_t *cnt = (size_t *)(void *)((char *)tmp + len);
    struct blk *src = a, *dst = tmp;
    for (unsigned shift = 0; shift < 48; shift += BLK_RADIX) {
        memset(cnt, 0, cnt_len);
        for (size_t i = 0; i < n; i++)
            cnt[(src[i].addr >> shift) & ((1UL << BLK_RADIX) - 1)]++;
        size_t sum = 0;
        for (size_t d = 0; d < (1UL << BLK_RADIX); d++) {
            size_t c = cnt[d];
            cnt[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[(src[i].addr >> shift) & ((1UL << BLK_RADIX) - 1)]++] =
                src[i];
        struct blk *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) /* an odd number of passes */
        memcpy(a, src, len);
    debug_unmap(tmp, len + cnt_len);
    return 0;
}

/* Index of the first block ending above w. */
static size_t blk_lower(const struct search *s, uintptr_t w)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->blk[mid].end <= w)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Every aligned word of [lo, hi) that points into a block not yet marked
 * marks it and queues it (interior pointers count). */
static void scan_words(struct search *s, uintptr_t lo, uintptr_t hi, int mark,
                       size_t self)
{
    lo = (lo + sizeof(void *) - 1) & ~(uintptr_t)(sizeof(void *) - 1);
    for (uintptr_t p = lo; p + sizeof(void *) <= hi; p += sizeof(void *)) {
        uintptr_t w = *(const uintptr_t *)p;
        if (w < s->lo || w >= s->hi)
            continue;
        size_t i = blk_find(s, w);
        if (i == (size_t)-1 || i == self || s->blk[i].mark != BLK_LEAKED)
            continue;
        s->blk[i].mark = mark;
        s->stack[s->top++] = (uint32_t)i;
    }
}

static void drain(struct search *s, int mark)
{
    while (s->top) {
        size_t i = s->stack[--s->top];
        scan_words(s, s->blk[i].addr, s->blk[i].end, mark, i);
    }
}

/* A root range less the live blocks in it (scanned as blocks, if
 * reached), less what is not resident (zeros). */
static void scan_root(struct search *s, uintptr_t lo, uintptr_t hi)
{
    unsigned char vec[256];
    while (lo < hi) {
        uintptr_t chunk = lo + 256 * PAGE_SIZE;
        if (chunk > hi)
            chunk = hi;
        uintptr_t plo = lo & ~(uintptr_t)(PAGE_SIZE - 1);
        size_t pages = (chunk - plo + PAGE_SIZE - 1) / PAGE_SIZE;
        int have = !vm_os_resident((void *)plo, chunk - plo, vec);
        for (size_t k = 0; k < pages; k++) {
            uintptr_t a = plo + k * PAGE_SIZE, b = a + PAGE_SIZE;
            if (have && !(vec[k] & 1))
                continue;
            if (a < lo)
                a = lo;
            if (b > chunk)
                b = chunk;
            while (a < b) { /* skip live blocks */
                size_t i = blk_lower(s, a);
                uintptr_t end = b;
                if (i < s->n && s->blk[i].addr <= a) {
                    a = s->blk[i].end;
                    continue;
                }
                if (i < s->n && s->blk[i].addr < end)
                    end = s->blk[i].addr;
                scan_words(s, a, end, BLK_REACHED, (size_t)-1);
                a = end;
            }
        }
        lo = chunk;
    }
}

/* kslab's memory: the direct map (every slab and its free objects, the
 * audit records) and mem_map (whose s_mem fields point at the first object
 * of each slab), section by section (vm/frames/page.h), and the tables
 * registered with slab_debug_exclude(). */
static int is_excluded(uintptr_t lo, uintptr_t hi)
{
    int nr = atomic_load_explicit(&vm_lowmem.nr_sections, memory_order_acquire);
    for (int k = 0; k < nr; k++) {
        const struct vm_section *sec = &vm_sections[k];
        uintptr_t base = (uintptr_t)sec->base, map = (uintptr_t)sec->map;
        if (!base) /* given back (vm/frames/lowmem.c) */
            continue;
        uintptr_t n = __atomic_load_n(&sec->nr_pages, __ATOMIC_RELAXED);
        if ((base < hi && base + n * PAGE_SIZE > lo) ||
            (map < hi && map + n * sizeof(struct page) > lo))
            return 1;
    }
    for (int i = 0; i < EXCLUDE_MAX; i++)
        if (excluded[i].lo && excluded[i].lo < hi && excluded[i].hi > lo)
            return 1;
    return 0;
}

/* Holds a dead thread's stack and no live thread's?  Then its TCB (the
 * thread pointer up: glibc keeps the DTV of a cached stack there, to
 * reuse it) is the only part that is a root: 1 and *tp. */
static int dead_stack(uintptr_t lo, uintptr_t hi, uintptr_t *tp)
{
    int dead = 0;
    for (int i = 0; i < THREAD_MARKS; i++) {
        uintptr_t sp = __atomic_load_n(&thread_marks[i].sp, __ATOMIC_ACQUIRE);
        if (sp < lo || sp >= hi)
            continue;
        if (__atomic_load_n(&thread_marks[i].live, __ATOMIC_ACQUIRE))
            return 0;
        *tp = thread_marks[i].tp;
        dead = 1;
    }
    return dead;
}

/* What maps_line needs: the search, and the calling thread's stack
 * pointer (below it is the search's own stack). */
struct roots {
    struct search *s;
    uintptr_t mysp;
};

/* One line of /proc/self/maps: scans it when it is a root. */
static void maps_line(char *line, void *arg)
{
    struct search *s = ((struct roots *)arg)->s;
    uintptr_t mysp = ((struct roots *)arg)->mysp;
    unsigned long lo, hi;
    char perms[8], path[256];
    path[0] = 0;
    if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &lo, &hi, perms, path) <
        3)
        return;
    if (perms[0] != 'r' || perms[1] != 'w')
        return;
    if (!strncmp(path, "[vvar", 5) || !strcmp(path, "[vsyscall]") ||
        (!strncmp(path, "/dev/", 5) && strcmp(path, "/dev/zero")))
        return;
    uintptr_t tp = 0;
    if (is_excluded(lo, hi))
        return; /* kslab's own memory */
    if (dead_stack(lo, hi, &tp)) {
        if (tp >= lo && tp < hi)
            scan_root(s, tp, tp + TCB_BYTES < hi ? tp + TCB_BYTES : hi);
        return;
    }
    uintptr_t sp = slab_stopped_sp_in(lo, hi);
    if (mysp >= lo && mysp < hi)
        lo = mysp; /* this thread: below sp is garbage */
    else if (sp)
        lo = sp; /* a stopped thread: the same */
    scan_root(s, lo, hi);
}

/* The roots: every readable and writable mapping that is not kslab's
 * heap or tables (data and bss of every object, thread stacks, static
 * TLS and the TCBs, mappings a runtime makes for its own heap). */
static __noinline void scan_roots(struct search *s, uintptr_t mysp)
{
    static char buf[8192];
    struct roots roots = {s, mysp};
    vm_os_read_lines("/proc/self/maps", buf, sizeof buf, maps_line, &roots);
}

/* The live blocks, from the audit records. */
static int snapshot(struct search *s)
{
    size_t n = 0;
    for (size_t b = 0; b < AUDIT_BUCKETS; b++)
        for (struct audit_rec *r = slab_audit_hash[b]; r; r = r->next)
            n++;
    s->cap = n + n / 4 + 1024;
    s->blk = slab_debug_map(s->cap * sizeof *s->blk);
    s->stack = slab_debug_map(s->cap * sizeof *s->stack);
    if (!s->blk || !s->stack)
        return -ENOMEM;
    for (size_t b = 0; b < AUDIT_BUCKETS && s->n < s->cap; b++) {
        if (!slab_audit_hash[b])
            continue;
        pthread_mutex_lock(slab_audit_lock(b));
        for (struct audit_rec *r = slab_audit_hash[b]; r && s->n < s->cap;
             r = r->next) {
            if (r->state != AUDIT_ALLOCATED)
                continue;
            struct blk *k = &s->blk[s->n++];
            k->addr = r->addr;
            k->end = r->addr + (r->size ? r->size : 1);
            k->ns = r->alloc_ns;
            k->mark = BLK_LEAKED;
        }
        pthread_mutex_unlock(slab_audit_lock(b));
    }
    if (blk_sort(s->blk, s->n))
        return -ENOMEM;
    if (s->n) {
        s->lo = s->blk[0].addr;
        for (size_t i = 0; i < s->n; i++)
            if (s->blk[i].end > s->hi)
                s->hi = s->blk[i].end;
    }
    return pg_build(s);
}

/* One line of the report: leaks of one kind from one stack. */
struct leak_group {
    int kind;
    unsigned int depth;
    void *stack[AUDIT_DEPTH];
    size_t bytes, count;
    int suppressed;
};

static void group_leaks(struct search *s, struct leak_group *g, size_t *ng,
                        size_t maxg)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct blk *k = &s->blk[i];
        if (k->mark == BLK_REACHED)
            continue;
        /* freed (or freed and made again) since the snapshot: not a leak */
        void *stack[AUDIT_DEPTH];
        unsigned int depth = 0;
        size_t asked = 0;
        size_t b = slab_audit_bucket(k->addr);
        pthread_mutex_lock(slab_audit_lock(b));
        const struct audit_rec *r = __slab_audit_find(b, k->addr);
        int same = r && r->state == AUDIT_ALLOCATED && r->alloc_ns == k->ns;
        if (same) {
            asked = r->asked;
            depth = r->alloc_depth;
            memcpy(stack, r->alloc_stack, depth * sizeof stack[0]);
        }
        pthread_mutex_unlock(slab_audit_lock(b));
        if (!same)
            continue;
        size_t j;
        for (j = 0; j < *ng; j++)
            if (g[j].kind == k->mark && g[j].depth == depth &&
                !memcmp(g[j].stack, stack, depth * sizeof g[j].stack[0]))
                break;
        if (j == *ng) {
            if (*ng == maxg)
                j = maxg - 1; /* too many stacks: the last takes the rest */
            else {
                (*ng)++;
                g[j].kind = k->mark;
                g[j].depth = depth;
                memcpy(g[j].stack, stack, depth * sizeof g[j].stack[0]);
            }
        }
        g[j].bytes += asked;
        g[j].count++;
    }
}

/* The patterns of KSLAB_LEAKS_SUPPRESS ("leak:pattern" lines), packed as
 * NUL-terminated strings. */
static size_t read_suppressions(char *buf, size_t size)
{
    if (!kslab_opt.leaks_suppress[0])
        return 0;
    ssize_t n = vm_os_read_file(kslab_opt.leaks_suppress, buf, size);
    if (n < 0) {
        kslab_warn("KSLAB_LEAKS_SUPPRESS: cannot open %s",
                   kslab_opt.leaks_suppress);
        return 0;
    }
    if (n == 0)
        return 0;
    size_t out = 0;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!strncmp(p, "leak:", 5) && p[5]) {
            size_t l = strlen(p + 5);
            while (l && (p[5 + l - 1] == ' ' || p[5 + l - 1] == '\r'))
                l--;
            memmove(buf + out, p + 5, l);
            buf[out + l] = 0;
            out += l + 1;
        }
        line = nl ? nl + 1 : NULL;
    }
    return out;
}

/* Does a frame of g name a function or object containing a pattern? */
static const char *suppressed_by(const struct leak_group *g, const char *pats,
                                 size_t len)
{
    for (unsigned int f = 0; f < g->depth; f++) {
        Dl_info di;
        if (!dladdr(g->stack[f], &di))
            continue;
        for (const char *p = pats; p < pats + len; p += strlen(p) + 1)
            if ((di.dli_sname && strstr(di.dli_sname, p)) ||
                (di.dli_fname && strstr(di.dli_fname, p)))
                return p;
    }
    return NULL;
}

/* Direct leaks first, then indirect; largest first in each. */
static int group_before(const struct leak_group *a, const struct leak_group *b)
{
    if (a->kind != b->kind)
        return a->kind != BLK_INDIRECT;
    return a->bytes > b->bytes;
}

static size_t report_leaks(int fd, FILE *out, struct leak_group *g, size_t ng)
{
    static char pats[8192];
    size_t plen = read_suppressions(pats, sizeof pats);
    size_t bytes = 0, count = 0, sup_bytes = 0, sup_count = 0;
    for (size_t i = 1; i < ng; i++) /* insertion sort: few groups */
        for (size_t j = i; j > 0 && group_before(&g[j], &g[j - 1]); j--) {
            struct leak_group t = g[j];
            g[j] = g[j - 1];
            g[j - 1] = t;
        }
    for (size_t i = 0; i < ng; i++) {
        if (plen && suppressed_by(&g[i], pats, plen)) {
            sup_bytes += g[i].bytes;
            sup_count += g[i].count;
            continue;
        }
        if (!count)
            slab_debug_out(
                fd, out,
                "\n================================================="
                "================\n==%d==ERROR: kslab: detected memory "
                "leaks\n",
                vm_os_getpid());
        slab_debug_out(fd, out,
                       "\n%s leak of %zu byte(s) in %zu object(s) allocated "
                       "from:\n",
                       g[i].kind == BLK_INDIRECT ? "Indirect" : "Direct",
                       g[i].bytes, g[i].count);
        slab_debug_print_stack(fd, out, g[i].stack, g[i].depth);
        bytes += g[i].bytes;
        count += g[i].count;
    }
    if (sup_count)
        slab_debug_out(fd, out,
                       "\nkslab: suppressed %zu byte(s) in %zu allocation(s)\n",
                       sup_bytes, sup_count);
    if (count)
        slab_debug_out(fd, out,
                       "\nSUMMARY: kslab: %zu byte(s) leaked in %zu "
                       "allocation(s).\n",
                       bytes, count);
    if (out)
        fflush(out);
    return bytes;
}

/**
 * kslab_leak_check - search for leaked blocks now and report them.
 * @out: the stream (stderr when NULL).
 *
 * Conservative, as LeakSanitizer and libumem's ::findleaks: the roots are
 * every readable and writable mapping of the process that is not kslab's
 * heap (data and bss of every loaded object, every thread's stack, static
 * TLS, a runtime's own mmap'd heaps), the calling thread's registers and
 * the stack above its stack pointer; every word that points into a live
 * block (interior pointers too) reaches it, and the reached blocks are
 * scanned the same way.  A block reached only from leaked blocks is an
 * indirect leak.  Other threads keep running: a pointer held only in
 * another thread's registers is not seen (at exit normally only the
 * caller is left).  Needs KSLAB_DEBUG=leaks (or audit): the live blocks
 * are the audit records.  A leak's bytes are those the program asked for.
 * Returns the bytes leaked, not counting leaks suppressed by
 * KSLAB_LEAKS_SUPPRESS.  With out NULL, the report goes to the stderr the
 * process started with (lib/report.c), written with write(2).
 */
static size_t leak_check(int fd, FILE *out);

size_t kslab_leak_check(FILE *out)
{
    return leak_check(out ? -1 : kslab_stderr_fd(), out);
}

/* The search and the report, to out, or to fd when out is NULL. */
static __noinline size_t leak_check(int fd, FILE *out)
{
    __builtin_unwind_init(); /* the caller's registers onto the stack */
    static pthread_mutex_t leak_lock = PTHREAD_MUTEX_INITIALIZER;
    if (!slab_audit_hash) {
        slab_debug_out(fd, out,
                       "kslab: the leak search needs KSLAB_DEBUG=leaks\n");
        return 0;
    }
    pthread_mutex_lock(&leak_lock);
    struct search s = {0};
    size_t bytes = 0, ng = 0, maxg = 0;
    struct leak_group *g = NULL;
    if (snapshot(&s))
        goto out;
    struct sigaction old_stop;
    int stopped = !slab_stop_world(&old_stop);
    /* The caller's callee-saved registers are pushed just below this
     * frame's base; deeper is the search's own stack (sorting leaves
     * block addresses there): the calling thread is scanned from here. */
    scan_roots(&s, (uintptr_t)__builtin_frame_address(0) - 64);
    drain(&s, BLK_REACHED);
    for (size_t i = 0; i < s.n; i++) { /* leaked blocks' children */
        if (s.blk[i].mark != BLK_LEAKED)
            continue;
        scan_words(&s, s.blk[i].addr, s.blk[i].end, BLK_INDIRECT, i);
        drain(&s, BLK_INDIRECT);
    }
    if (stopped)
        slab_resume_world(&old_stop);
    maxg = s.n < 65536 ? s.n + 1 : 65536;
    g = slab_debug_map(maxg * sizeof *g);
    if (!g)
        goto out;
    group_leaks(&s, g, &ng, maxg);
    bytes = report_leaks(fd, out, g, ng);
out:
    if (g)
        debug_unmap(g, maxg * sizeof *g);
    if (s.blk)
        debug_unmap(s.blk, s.cap * sizeof *s.blk);
    if (s.stack)
        debug_unmap(s.stack, s.cap * sizeof *s.stack);
    if (s.pg)
        debug_unmap(s.pg, (s.pg_mask + 1) * sizeof *s.pg);
    pthread_mutex_unlock(&leak_lock);
    return bytes;
}

/* At exit (registered first, so run after the program's own handlers). */
static void leaks_at_exit(void)
{
    size_t bytes = leak_check(SLAB_DEBUG_LEAKS_LOG_FD, NULL);
    if (leaks_log_owned)
        close(leaks_log_fd);
    leaks_log_fd = -1;
    leaks_log_owned = 0;
    if (bytes && kslab_opt.leaks_exitcode) {
        fflush(NULL);
        _exit(kslab_opt.leaks_exitcode);
    }
}

void slab_leaks_init(void)
{
    atexit(leaks_at_exit);
}
