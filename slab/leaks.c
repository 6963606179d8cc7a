/*
 * slab/debug.c — audit records, the transaction log, kslab_verify() and
 * the leak search (see slab/debug.h for the switches).
 *
 * Audit records (libumem's bufctl_audit): one struct audit_rec per block
 * address ever handed out while audit is on, in a hash of AUDIT_BUCKETS
 * chains keyed by the address, each chain under one of AUDIT_LOCKS
 * striped locks.  The records are objects of the cache "kslab-audit",
 * allocated on the locked path (never a per-thread array, never through
 * the hooks); the bucket array and the log ring are mappings of their own.
 * None of them is in the program's blocks, and none is a root of the leak
 * search.  A record is kept after its block is freed (state AUDIT_FREED)
 * so that a second free, or a report about the address, names both
 * stacks; the next allocation at the address takes the record over.  The
 * records of the last AUDIT_KEEP_FREED frees are kept so; the record of
 * an older free whose address has not been handed out again goes back to
 * the record cache (audit_age): the records are at most the live blocks
 * plus AUDIT_KEEP_FREED, however long the program runs.
 *
 * Stacks: libunwind's unw_backtrace() when it is there (Debian's
 * libunwind8; it caches each frame's unwinding rule per thread: about
 * 0.1 µs an event), otherwise glibc's backtrace() (libgcc_s's unwinder,
 * which looks up the .eh_frame of every frame each time: 1.5 to 10 µs).
 * Both read .eh_frame, so no frame pointers are needed.  libunwind is an
 * optional dependency, never a link-time one: unw_backtrace is a weak
 * reference, set when the program was linked with it (pkg-config --static
 * kslab, the CMake target kslab::kslab_static); otherwise, in the shared
 * libraries and only when KSLAB_DEBUG asks for stacks, libunwind.so.8 is
 * loaded with dlopen (slab/unwind_dl.c, not in libkslab.a: a -static
 * program links no dlopen); otherwise backtrace().  The choice is
 * made once (unwinder_choose), not before this file's constructor has run
 * (libc is then ready for dlopen; an allocation made earlier by the
 * loader has no stack unless unw_backtrace is linked), and the chosen
 * unwinder is called once there, so what it loads and allocates at its
 * first use (libgcc_s, libunwind's caches) is done at start-up, not
 * inside an allocation with kslab's locks held.  At most AUDIT_DEPTH
 * frames after the frames of kslab itself when kslab is a shared object
 * (libkslab.so, libkslab-preload.so); statically linked, kslab's own
 * frames are kept.  A thread in the unwinder records no stack for the
 * allocations it makes (a guard).
 *
 * Sizes: a record holds the size the program asked for (malloc(12345):
 * 12345, what a leak report counts, as LeakSanitizer and memcheck do) and
 * the usable size of the block (its size class, 14336: the extent the
 * leak search scans and matches pointers against).  The malloc family
 * tells the asked size through its hook (interpose/tool.c: the slab's own
 * record is deferred while the family allocates, slab_debug_defer), and
 * kmalloc from its slow path; kmem_cache_alloc asks for the object size.
 *
 * The log: a ring of log_entries events, an event's slot chosen by an
 * atomic increment, its sequence number stored last (release) so a reader
 * takes only whole events: no lock.
 *
 * Locking: an audit stripe lock is a leaf, taken after any cache lock;
 * under it only the record cache's own lock (record allocation) is taken.
 */

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <kslab/kslab.h>

#include "lib/init.h"
#include "lib/options.h"
#include "lib/report.h"
#include "slab/debug.h"
#include "slab/slab_internal.h"

#define AUDIT_DEPTH 16
#define AUDIT_BUCKETS (1UL << 20)
#define AUDIT_LOCKS 256
/* The records of this many of the last frees are kept (both stacks for a
 * double free, a report about the address); an older freed record is
 * given back unless the address was handed out again meanwhile. */
#define AUDIT_KEEP_FREED (1UL << 16)

enum { AUDIT_ALLOCATED = 1, AUDIT_FREED = 2 };

/* One block address: the last allocation there and the free after it. */
struct audit_rec {
    struct audit_rec *next; /* hash chain */
    uintptr_t addr;
    size_t size;  /* usable: the block's extent */
    size_t asked; /* what the program asked for */
    int state;
    int alloc_tid, free_tid;
    unsigned char alloc_depth, free_depth;
    uint64_t alloc_ns, free_ns;
    void *alloc_stack[AUDIT_DEPTH];
    void *free_stack[AUDIT_DEPTH];
};

/* One event of the log; seq is 1 + its number, 0 while it is written. */
struct log_ent {
    uint64_t seq;
    uintptr_t addr;
    size_t size;
    uint64_t ns;
    int tid;
    unsigned char op, depth;
    void *stack[AUDIT_DEPTH];
};
enum { LOG_ALLOC = 1, LOG_FREE = 2 };

static kmem_cache_t *audit_cachep;
static struct audit_rec **audit_hash;
static pthread_mutex_t audit_locks[AUDIT_LOCKS];
static struct log_ent *log_ring;
static unsigned long log_size;
static uint64_t log_head;
static int debug_ready; /* records and ring made: hooks act */
static uint64_t start_ns;
/* The last AUDIT_KEEP_FREED frees, oldest at freed_head (mod the size). */
static struct freed_ent {
    uintptr_t addr;
    uint64_t ns;
} * freed_ring;
static uint64_t freed_head;
static pthread_mutex_t freed_lock = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t self_lo, self_hi; /* kslab's code, when a shared object */

static __thread int in_unwinder __attribute__((tls_model("initial-exec")));
/* The malloc family is allocating in this thread: the slab's hook leaves
 * the record to the family's, which knows the size asked for. */
static __thread int defer_record __attribute__((tls_model("initial-exec")));
/* kslab_log_print() is running in this thread: its own events (stdio's
 * buffers) are not logged, so they cannot push out what it prints. */
static __thread int in_log_print __attribute__((tls_model("initial-exec")));

static void thread_mark(void);

/* The calling thread's id, cached: gettid() is a system call, which costs
 * more than the rest of an event under a hypervisor.  A forked child
 * forgets it (debug_fork_child). */
static __thread int my_tid __attribute__((tls_model("initial-exec")));

static inline int cur_tid(void)
{
    if (unlikely(!my_tid))
        my_tid = gettid();
    return my_tid;
}

/* ---- small helpers ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void *debug_map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    slab_debug_exclude(p, len);
    return p;
}

static void debug_unmap(void *p, size_t len)
{
    slab_debug_exclude(p, 0);
    munmap(p, len);
}

/* ---- the unwinder ---- */

/* Weak: set only when the program (or a library it loaded) was linked
 * with libunwind; a static link never pulls it in by itself. */
extern int unw_backtrace(void **buf, int size) __attribute__((weak));

typedef slab_unwinder_fn unwinder_fn;
static unwinder_fn unwinder; /* chosen: see the top of the file */
static int debug_ctor_ran;   /* libc is ready for dlopen */
static struct kslab_once unwinder_once = KSLAB_ONCE_INIT;

/* Set at exit in a static process unwinding with backtrace(): there the
 * unwinder is libgcc_eh's, whose frame-registration lock is held while
 * crtbeginT's destructor (__deregister_frame_info, the last of the
 * destructors) frees its tables; a stack of that free would wait on the
 * lock forever.  From this file's destructor on, no stack is taken (the
 * leak search takes none). */
static int stacks_stopped;
static int stop_stacks_at_exit;

__attribute__((destructor)) static void stacks_stop(void)
{
    if (stop_stacks_at_exit)
        __atomic_store_n(&stacks_stopped, 1, __ATOMIC_RELEASE);
}

static void unwinder_choose(void)
{
    unwinder_fn fn = unw_backtrace;
    if (!fn && slab_unwind_dlopen)
        fn = slab_unwind_dlopen();
    if (!fn) {
        fn = backtrace;
        stop_stacks_at_exit = !getauxval(AT_BASE);
    }
    void *buf[4];
    int was = in_unwinder;
    in_unwinder = 1;
    fn(buf, 4); /* its first use loads and allocates: now */
    in_unwinder = was;
    __atomic_store_n(&unwinder, fn, __ATOMIC_RELEASE);
}

/* The unwinder for a stack now: chosen once libc is ready (the
 * constructor has run); before, the linked libunwind or none. */
static unwinder_fn get_unwinder(void)
{
    unwinder_fn fn = __atomic_load_n(&unwinder, __ATOMIC_ACQUIRE);
    if (likely(fn))
        return fn;
    if (!__atomic_load_n(&debug_ctor_ran, __ATOMIC_ACQUIRE))
        return unw_backtrace;
    kslab_once(&unwinder_once, unwinder_choose);
    return __atomic_load_n(&unwinder, __ATOMIC_ACQUIRE);
}

/* Constructors run once libc is up: the unwinder may be loaded now if
 * start-up has already asked for stacks (otherwise slab_debug_init will,
 * or the first stack after it). */
__attribute__((constructor)) static void debug_ctor(void)
{
    __atomic_store_n(&debug_ctor_ran, 1, __ATOMIC_RELEASE);
    if (__atomic_load_n(&debug_ready, __ATOMIC_ACQUIRE))
        kslab_once(&unwinder_once, unwinder_choose);
}

/* Up to AUDIT_DEPTH return addresses of the caller's caller chain, the
 * frames in kslab's own code left out. */
static unsigned int capture_stack(void **out)
{
    void *buf[AUDIT_DEPTH + 24];
    if (in_unwinder || __atomic_load_n(&stacks_stopped, __ATOMIC_ACQUIRE))
        return 0;
    in_unwinder = 1;
    unwinder_fn fn = get_unwinder();
    int n = fn ? fn(buf, (int)(sizeof buf / sizeof buf[0])) : 0;
    in_unwinder = 0;
    int i = 1; /* this function */
    if (self_hi)
        while (i < n && (uintptr_t)buf[i] >= self_lo &&
               (uintptr_t)buf[i] < self_hi)
            i++;
    unsigned int k = 0;
    for (; i < n && k < AUDIT_DEPTH; i++)
        out[k++] = buf[i];
    return k;
}

/* Finds the executable segment of the object that holds this code. */
static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t me = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (me >= lo && me < lo + ph->p_memsz) {
            self_lo = lo;
            self_hi = lo + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

static void find_self_text(void)
{
    Dl_info me, prog;
    void *entry = (void *)getauxval(AT_ENTRY);
    if (!dladdr((void *)find_self_text, &me) || !entry ||
        !dladdr(entry, &prog) || me.dli_fbase == prog.dli_fbase)
        return; /* linked into the program: its frames are kept */
    dl_iterate_phdr(find_self, (void *)(uintptr_t)find_self_text);
}

/* ---- writing a report with write(2) ---- */

/* out_line()'s fd for the lines after a fatal one-line error: where
 * lib/report.c sends that line (the original stderr, and descriptor 2
 * when the program redirected it). */
#define FATAL_FD (-2)
/* ... for the leak report at exit: the file of KSLAB_LEAKS_LOG, opened at
 * its first line (no file when nothing leaked, as LeakSanitizer's
 * log_path), else the original stderr. */
#define LEAKS_LOG_FD (-3)
static int leaks_log_fd = -1, leaks_log_owned;

static int leaks_log_open(void)
{
    if (leaks_log_fd >= 0)
        return leaks_log_fd;
    if (!kslab_opt.leaks_log[0])
        return leaks_log_fd = kslab_stderr_fd();
    char path[PATH_MAX + 16];
    kslab_snprintf(path, sizeof path, "%s.%d", kslab_opt.leaks_log,
                   (int)getpid());
    leaks_log_fd =
        open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
    leaks_log_owned = leaks_log_fd >= 0;
    if (leaks_log_fd < 0) {
        kslab_warn("KSLAB_LEAKS_LOG: cannot open %s (errno %d)", path, errno);
        leaks_log_fd = kslab_stderr_fd();
    }
    return leaks_log_fd;
}

static void out_line(int fd, FILE *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void out_line(int fd, FILE *f, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 1;
    if (f) {
        fwrite(line, 1, len, f);
        return;
    }
    if (fd == FATAL_FD) {
        kslab_report_write(line, len, 1);
        return;
    }
    if (fd == LEAKS_LOG_FD)
        fd = leaks_log_open();
    size_t off = 0;
    while (fd >= 0 && off < len) {
        ssize_t w = write(fd, line + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

/* "    #i 0xpc in func /obj+0xoff" per frame (LeakSanitizer's shape;
 * obj+0xoff is what `addr2line -f -e obj 0xoff' takes). */
static void print_stack(int fd, FILE *f, void *const *stack, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++) {
        Dl_info di;
        uintptr_t pc = (uintptr_t)stack[i];
        if (!dladdr(stack[i], &di) || !di.dli_fname) {
            out_line(fd, f, "    #%u 0x%lx in ??\n", i, (unsigned long)pc);
            continue;
        }
        unsigned long objoff = pc - (uintptr_t)di.dli_fbase;
        if (di.dli_sname)
            out_line(fd, f, "    #%u 0x%lx in %s %s+0x%lx\n", i,
                     (unsigned long)pc, di.dli_sname, di.dli_fname, objoff);
        else
            out_line(fd, f, "    #%u 0x%lx in ?? %s+0x%lx\n", i,
                     (unsigned long)pc, di.dli_fname, objoff);
    }
    if (!n)
        out_line(fd, f, "    (no stack)\n");
}

/* ---- audit records ---- */

static inline size_t audit_bucket(uintptr_t addr)
{
    return (size_t)((addr >> 4) * 0x9E3779B97F4A7C15ULL >> 44) &
           (AUDIT_BUCKETS - 1);
}

static inline pthread_mutex_t *audit_lock(size_t b)
{
    return &audit_locks[b & (AUDIT_LOCKS - 1)];
}

/* Record of addr or NULL; its stripe lock held. */
static struct audit_rec *__audit_find(size_t b, uintptr_t addr)
{
    for (struct audit_rec *r = audit_hash[b]; r; r = r->next)
        if (r->addr == addr)
            return r;
    return NULL;
}

static void log_event(int op, uintptr_t addr, size_t size, uint64_t ns, int tid,
                      void *const *stack, unsigned int depth)
{
    uint64_t s = __atomic_fetch_add(&log_head, 1, __ATOMIC_RELAXED);
    struct log_ent *e = &log_ring[s % log_size];
    /* an exchange, not a fence (ThreadSanitizer has none): its acquire
     * half keeps the stores below after it */
    __atomic_exchange_n(&e->seq, 0, __ATOMIC_ACQ_REL);
    e->addr = addr;
    e->size = size;
    e->ns = ns;
    e->tid = tid;
    e->op = (unsigned char)op;
    e->depth = (unsigned char)depth;
    memcpy(e->stack, stack, depth * sizeof(void *));
    __atomic_store_n(&e->seq, s + 1, __ATOMIC_RELEASE);
}

/* The record of a block of usable bytes at p, asked bytes asked for. */
static void debug_record(void *p, size_t asked, size_t usable)
{
    if (!debug_ready || !p || vm_internal_thread)
        return; /* kslab's own (vm_internal_thread): not recorded */
    thread_mark();
    void *stack[AUDIT_DEPTH];
    unsigned int depth = capture_stack(stack);
    uint64_t ns = now_ns() - start_ns;
    int tid = cur_tid();
    uintptr_t addr = (uintptr_t)p;
    if (log_ring && !in_log_print)
        log_event(LOG_ALLOC, addr, asked, ns, tid, stack, depth);
    if (!audit_hash)
        return;
    size_t b = audit_bucket(addr);
    pthread_mutex_lock(audit_lock(b));
    struct audit_rec *r = __audit_find(b, addr);
    if (!r) {
        r = slab_alloc_direct(audit_cachep, GFP_KERNEL);
        if (!r) { /* no memory for the record: the block goes unaudited */
            pthread_mutex_unlock(audit_lock(b));
            return;
        }
        r->addr = addr;
        r->next = audit_hash[b];
        audit_hash[b] = r;
    }
    r->size = usable;
    r->asked = asked;
    r->state = AUDIT_ALLOCATED;
    r->alloc_tid = tid;
    r->alloc_ns = ns;
    r->alloc_depth = (unsigned char)depth;
    memcpy(r->alloc_stack, stack, depth * sizeof(void *));
    r->free_depth = 0;
    r->free_tid = 0;
    r->free_ns = 0;
    pthread_mutex_unlock(audit_lock(b));
}

void slab_debug_alloc(void *p, size_t size)
{
    if (!defer_record)
        debug_record(p, size, size);
}

void slab_debug_alloc_asked(void *p, size_t asked, size_t usable)
{
    debug_record(p, asked, usable);
}

int slab_debug_defer(void)
{
    int was = defer_record;
    defer_record = 1;
    return was;
}

void slab_debug_undefer(int was)
{
    defer_record = was;
}

void slab_debug_resize(const void *p, size_t asked)
{
    if (!debug_ready || !p || !audit_hash)
        return;
    uintptr_t addr = (uintptr_t)p;
    size_t b = audit_bucket(addr);
    pthread_mutex_lock(audit_lock(b));
    struct audit_rec *r = __audit_find(b, addr);
    if (r && r->state == AUDIT_ALLOCATED && asked <= r->size)
        r->asked = asked;
    pthread_mutex_unlock(audit_lock(b));
}

/* addr was freed at ns: its record joins the ring of the last frees, and
 * the record of the free that leaves the ring goes back to the record
 * cache, unless its address was allocated (or freed) again since.  Takes
 * freed_lock, then (alone) one stripe lock. */
static void audit_age(uintptr_t addr, uint64_t ns)
{
    pthread_mutex_lock(&freed_lock);
    struct freed_ent *e = &freed_ring[freed_head++ % AUDIT_KEEP_FREED];
    struct freed_ent old = *e;
    e->addr = addr;
    e->ns = ns;
    pthread_mutex_unlock(&freed_lock);
    if (!old.addr)
        return;
    size_t b = audit_bucket(old.addr);
    pthread_mutex_lock(audit_lock(b));
    struct audit_rec **pp = &audit_hash[b], *r;
    while ((r = *pp) && r->addr != old.addr)
        pp = &r->next;
    if (r && r->state == AUDIT_FREED && r->free_ns == old.ns)
        *pp = r->next;
    else
        r = NULL;
    pthread_mutex_unlock(audit_lock(b));
    if (r)
        slab_free_direct(audit_cachep, r);
}

void slab_debug_free(const void *p, const char *fn)
{
    if (!debug_ready || !p || defer_record)
        return; /* deferred: a try of the family's aligned path */
    void *stack[AUDIT_DEPTH];
    unsigned int depth = capture_stack(stack);
    uint64_t ns = now_ns() - start_ns;
    int tid = cur_tid();
    uintptr_t addr = (uintptr_t)p;
    size_t size = 0;
    if (audit_hash) {
        size_t b = audit_bucket(addr);
        pthread_mutex_lock(audit_lock(b));
        struct audit_rec *r = __audit_find(b, addr);
        if (r && r->state == AUDIT_FREED) {
            pthread_mutex_unlock(audit_lock(b));
            kslab_die_at(p, "%s(): double free of %p", fn, p);
        }
        if (r) {
            size = r->asked;
            r->state = AUDIT_FREED;
            r->free_tid = tid;
            r->free_ns = ns;
            r->free_depth = (unsigned char)depth;
            memcpy(r->free_stack, stack, depth * sizeof(void *));
        }
        pthread_mutex_unlock(audit_lock(b));
        if (r && freed_ring)
            audit_age(addr, ns);
    }
    if (log_ring && !in_log_print && !vm_internal_thread)
        log_event(LOG_FREE, addr, size, ns, tid, stack, depth);
}

void slab_debug_move(const void *old, void *p, size_t size)
{
    slab_debug_free(old, "realloc");
    slab_debug_alloc(p, size);
}

/* The record of the block holding addr, copied (its lock dropped): the
 * exact address first, then the slab object around it, then any block
 * around it (a walk of every record: this is the way to abort()). */
static int audit_lookup(uintptr_t addr, struct audit_rec *out)
{
    uintptr_t keys[2] = {addr, 0};
    struct page *page = vm_virt_to_page((void *)addr);
    if (page && PageSlabOwned(page)) {
        kmem_cache_t *c = GET_PAGE_CACHE(page);
        uintptr_t base = (uintptr_t)page->s_mem + c->obj_offset;
        if (addr >= base && c->size)
            keys[1] = base + (addr - base) / c->size * c->size;
    }
    for (int k = 0; k < 2; k++) {
        if (!keys[k])
            continue;
        size_t b = audit_bucket(keys[k]);
        if (pthread_mutex_trylock(audit_lock(b)))
            continue; /* held by the thread that died: no record then */
        struct audit_rec *r = __audit_find(b, keys[k]);
        if (r)
            *out = *r;
        pthread_mutex_unlock(audit_lock(b));
        if (r)
            return 1;
    }
    for (size_t b = 0; b < AUDIT_BUCKETS; b++) {
        if (!audit_hash[b])
            continue;
        for (struct audit_rec *r = audit_hash[b]; r; r = r->next) {
            if (addr >= r->addr && addr < r->addr + r->size) {
                *out = *r;
                return 1;
            }
        }
    }
    return 0;
}

static void print_log_for(int fd, FILE *f, uintptr_t lo, uintptr_t hi);

/* The report hook: what kslab knows of addr, after the one line. */
static void debug_report(const void *addr)
{
    struct audit_rec r;
    void *stack[AUDIT_DEPTH];
    unsigned int depth = capture_stack(stack);
    uintptr_t a = (uintptr_t)addr, lo = a, hi = a + 1;
    out_line(FATAL_FD, NULL, "    detected in thread %d:\n", gettid());
    print_stack(FATAL_FD, NULL, stack, depth);
    if (audit_hash && audit_lookup(a, &r)) {
        char usable[48] = "";
        if (r.size != r.asked)
            kslab_snprintf(usable, sizeof usable, " [%zu usable]", r.size);
        out_line(FATAL_FD, NULL, "    block %p of %zu bytes%s (%s)%s\n",
                 (void *)r.addr, r.asked, usable,
                 r.state == AUDIT_FREED ? "free" : "allocated",
                 r.addr != a ? ", the address is inside it" : "");
        out_line(FATAL_FD, NULL,
                 "    allocated by thread %d at %llu.%06llu s:\n", r.alloc_tid,
                 (unsigned long long)(r.alloc_ns / 1000000000),
                 (unsigned long long)(r.alloc_ns / 1000 % 1000000));
        print_stack(FATAL_FD, NULL, r.alloc_stack, r.alloc_depth);
        if (r.state == AUDIT_FREED) {
            out_line(FATAL_FD, NULL,
                     "    freed by thread %d at %llu.%06llu s:\n", r.free_tid,
                     (unsigned long long)(r.free_ns / 1000000000),
                     (unsigned long long)(r.free_ns / 1000 % 1000000));
            print_stack(FATAL_FD, NULL, r.free_stack, r.free_depth);
        }
        lo = r.addr;
        hi = r.addr + (r.size ? r.size : 1);
    } else if (audit_hash) {
        out_line(FATAL_FD, NULL, "    no audit record of %p\n", addr);
    }
    if (log_ring)
        print_log_for(FATAL_FD, NULL, lo, hi);
}

/* ---- the log ---- */

static void print_log_ent(int fd, FILE *f, const struct log_ent *e)
{
    out_line(fd, f, "#%llu %llu.%06llu s thread %d %s %p size %zu\n",
             (unsigned long long)(e->seq - 1),
             (unsigned long long)(e->ns / 1000000000),
             (unsigned long long)(e->ns / 1000 % 1000000), e->tid,
             e->op == LOG_ALLOC ? "alloc" : "free", (void *)e->addr, e->size);
    print_stack(fd, f, e->stack, e->depth);
}

/* Copies slot s of the ring when it holds a whole event numbered s. */
static int log_read(uint64_t s, struct log_ent *out)
{
    struct log_ent *e = &log_ring[s % log_size];
    uint64_t a = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
    if (a != s + 1)
        return 0;
    memcpy(out, e, sizeof *out);
    /* an RMW that changes nothing, with release: the copy stays before
     * the second look at seq */
    return __atomic_fetch_add(&e->seq, 0, __ATOMIC_ACQ_REL) == a;
}

/* The ring's events for blocks overlapping [lo, hi), oldest first. */
static void print_log_for(int fd, FILE *f, uintptr_t lo, uintptr_t hi)
{
    uint64_t head = __atomic_load_n(&log_head, __ATOMIC_ACQUIRE);
    uint64_t first = head > log_size ? head - log_size : 0;
    out_line(fd, f, "    log: events at %p (of the last %llu):\n", (void *)lo,
             (unsigned long long)(head - first));
    for (uint64_t s = first; s < head; s++) {
        struct log_ent e;
        if (!log_read(s, &e))
            continue;
        if (e.addr < hi && e.addr + (e.size ? e.size : 1) > lo)
            print_log_ent(fd, f, &e);
    }
}

/**
 * kslab_log_print - print the KSLAB_DEBUG=log ring, oldest event first.
 * @out: the stream (stderr when NULL).
 *
 * One line per event ("#seq time thread tid alloc|free addr size n")
 * followed by its stack.  Events written while it prints are not waited
 * for.  Prints one line saying so when the log is off.
 */
void kslab_log_print(FILE *out)
{
    if (!out)
        out = stderr;
    if (!log_ring) {
        fprintf(out, "kslab: the log is off (KSLAB_DEBUG=log)\n");
        return;
    }
    in_log_print = 1;
    uint64_t head = __atomic_load_n(&log_head, __ATOMIC_ACQUIRE);
    uint64_t first = head > log_size ? head - log_size : 0;
    fprintf(out, "kslab: log of %llu events (%llu to %llu):\n",
            (unsigned long long)(head - first), (unsigned long long)first,
            (unsigned long long)(head ? head - 1 : 0));
    for (uint64_t s = first; s < head; s++) {
        struct log_ent e;
        if (log_read(s, &e))
            print_log_ent(-1, out, &e);
    }
    fflush(out);
    in_log_print = 0;
}

/* ---- kslab_verify ---- */

static int verify_broken;

static void verify_one(FILE *unused, kmem_cache_t *cachep)
{
    (void)unused;
    if (slab_verify_cache(cachep))
        __atomic_add_fetch(&verify_broken, 1, __ATOMIC_RELAXED);
}

/**
 * kslab_verify - run every cache's and every zone's validator now.
 *
 * Returns 0 when every cache and zone is consistent; otherwise minus the
 * number of caches found broken, plus one when the zones are, each
 * reported by one line on stderr: the first broken invariant of the cache,
 * naming it and the slab ("kslab: slab_check_cache(): cache `name': ..."),
 * or of the zones, naming the zone and the frame ("kslab: zone Normal:
 * block at frame 42 ...").  Nothing aborts and nothing is repaired.  May
 * be called from any thread; takes each cache's lock, then each zone's,
 * in turn.
 */
int kslab_verify(void)
{
    static pthread_mutex_t verify_lock = PTHREAD_MUTEX_INITIALIZER;
    kslab_init();
    pthread_mutex_lock(&verify_lock);
    verify_broken = 0;
    slab_for_each_cache(verify_one, NULL);
    int broken = verify_broken;
    if (vm_verify_zones((void (*)(const char *, ...))kslab_warn) < 0)
        broken++;
    pthread_mutex_unlock(&verify_lock);
    return broken ? -broken : 0;
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

static void thread_mark(void)
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

/* ---- stopping the other threads for the leak search ---- */

/* As LeakSanitizer's StopTheWorld, but from inside the process: each
 * other thread gets STOP_SIGNAL, whose handler notes where its stack is
 * in use (the handler's own frame: below it nothing is live; above it are
 * the kernel's signal frame, which holds every register the thread had,
 * and the interrupted frames) and waits on a futex until the search is
 * over.  A thread that blocks the signal (kslab's background purge thread
 * blocks all), does not answer within STOP_WAIT_NS or started after the
 * list was read is not stopped: its stack mapping is scanned whole, as it
 * runs.  The program's own handler of STOP_SIGNAL, if any,
 * is put back after the search. */
#define STOP_SIGNAL SIGPWR
/* libc's sigaction: libkslab.so exports a sigaction() of its own (the
 * SIGSEGV chaining of vm/mm/fault.c), a layer above; under a sanitizer,
 * whose interceptor must see every handler, the ordinary one. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define libc_sigaction sigaction
#else
extern int __sigaction(int sig, const struct sigaction *act,
                       struct sigaction *old);
#define libc_sigaction __sigaction
#endif
#define STOP_MAX 1024
#define STOP_WAIT_NS 300000000ULL

enum { STOP_NONE, STOP_SENT, STOP_HELD, STOP_LEFT };

static struct stop_slot {
    int tid;
    int state;
    uintptr_t sp;
} stop_tab[STOP_MAX];
static int stop_n;
/* Odd while a search holds the threads stopped: the futex they wait on. */
static unsigned int stop_epoch;

static void stop_handler(int sig)
{
    (void)sig;
    int saved = errno;
    unsigned int e = __atomic_load_n(&stop_epoch, __ATOMIC_ACQUIRE);
    int me = (int)syscall(SYS_gettid);
    int n = __atomic_load_n(&stop_n, __ATOMIC_ACQUIRE);
    for (int i = 0; (e & 1) && i < n; i++) {
        struct stop_slot *t = &stop_tab[i];
        int sent = STOP_SENT;
        if (t->tid != me)
            continue;
        __atomic_store_n(&t->sp, (uintptr_t)__builtin_frame_address(0),
                         __ATOMIC_RELAXED);
        if (!__atomic_compare_exchange_n(&t->state, &sent, STOP_HELD, 0,
                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            break;
        while (__atomic_load_n(&stop_epoch, __ATOMIC_ACQUIRE) == e)
            syscall(SYS_futex, &stop_epoch, FUTEX_WAIT_PRIVATE, e, NULL, NULL,
                    0);
        __atomic_store_n(&t->state, STOP_LEFT, __ATOMIC_RELEASE);
        break;
    }
    errno = saved;
}

static void stop_add(int tid)
{
    if (stop_n < STOP_MAX) {
        stop_tab[stop_n].tid = tid;
        stop_tab[stop_n].sp = 0;
        stop_tab[stop_n].state = STOP_SENT;
        stop_n++;
    }
}

/* Does thread tid block (or ignore) STOP_SIGNAL?  Its SigBlk line in
 * /proc/self/task/tid/status.  Such a thread would never answer: it is not
 * waited for (kslab's purge thread blocks every signal). */
static int stop_blocked(int tid)
{
    char path[64], buf[2048];
    kslab_snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 1;
    buf[n] = 0;
    const char *p = strstr(buf, "\nSigBlk:");
    if (!p)
        return 0;
    unsigned long long mask = strtoull(p + 8, NULL, 16);
    return (mask >> (STOP_SIGNAL - 1)) & 1;
}

/* The threads of the process but the caller, from /proc/self/task (read
 * with getdents64: no malloc, as opendir would). */
static void stop_list(int self)
{
    static char buf[8192];
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n;
    while ((n = getdents64(fd, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            int tid = atoi(d->d_name);
            if (tid > 0 && tid != self && !stop_blocked(tid))
                stop_add(tid);
        }
    }
    close(fd);
}

/* Stops every other thread it can; 0 or -errno (nothing stopped). */
static int stop_world(struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop_handler;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    stop_n = 0;
    stop_list(cur_tid());
    if (!stop_n)
        return 0;
    if (libc_sigaction(STOP_SIGNAL, &sa, old))
        return -errno;
    __atomic_add_fetch(&stop_epoch, 1, __ATOMIC_ACQ_REL); /* odd */
    pid_t pid = getpid();
    for (int i = 0; i < stop_n; i++)
        if (syscall(SYS_tgkill, pid, stop_tab[i].tid, STOP_SIGNAL))
            stop_tab[i].state = STOP_NONE; /* gone meanwhile */
    uint64_t until = now_ns() + STOP_WAIT_NS;
    for (;;) {
        int waiting = 0;
        for (int i = 0; i < stop_n; i++)
            waiting += __atomic_load_n(&stop_tab[i].state, __ATOMIC_ACQUIRE) ==
                       STOP_SENT;
        if (!waiting || now_ns() > until)
            break;
        sched_yield();
    }
    return 0;
}

/* Lets the stopped threads go; waits until they are out of the table. */
static void resume_world(const struct sigaction *old)
{
    if (!stop_n)
        return;
    __atomic_add_fetch(&stop_epoch, 1, __ATOMIC_ACQ_REL); /* even */
    syscall(SYS_futex, &stop_epoch, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL,
            0);
    for (int i = 0; i < stop_n; i++) {
        int sent = STOP_SENT;
        /* never answered: a late handler finds the slot taken back */
        if (__atomic_compare_exchange_n(&stop_tab[i].state, &sent, STOP_NONE, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            continue;
        uint64_t until = now_ns() + STOP_WAIT_NS;
        while (__atomic_load_n(&stop_tab[i].state, __ATOMIC_ACQUIRE) ==
                   STOP_HELD &&
               now_ns() < until)
            sched_yield();
    }
    libc_sigaction(STOP_SIGNAL, old, NULL);
    __atomic_store_n(&stop_n, 0, __ATOMIC_RELEASE);
}

/* The lowest stack address in use of a stopped thread whose stack is in
 * [lo, hi), or 0. */
static uintptr_t stopped_sp_in(uintptr_t lo, uintptr_t hi)
{
    uintptr_t best = 0;
    for (int i = 0; i < stop_n; i++) {
        if (__atomic_load_n(&stop_tab[i].state, __ATOMIC_ACQUIRE) != STOP_HELD)
            continue;
        uintptr_t sp = stop_tab[i].sp;
        if (sp >= lo && sp < hi && (!best || sp < best))
            best = sp;
    }
    return best;
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
    s->pg = debug_map(size * sizeof *s->pg);
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
    struct blk *tmp = debug_map(len + cnt_len);
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
        int have = !mincore((void *)plo, chunk - plo, vec);
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
        if (!base) /* given back (page_alloc.c) */
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

/* One line of /proc/self/maps: scans it when it is a root. */
static void maps_line(struct search *s, char *line, uintptr_t mysp)
{
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
    uintptr_t sp = stopped_sp_in(lo, hi);
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
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = 0;
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = 0;
            maps_line(s, line, mysp);
            line = nl + 1;
        }
        len = (size_t)(buf + len - line);
        memmove(buf, line, len);
    }
    close(fd);
}

/* The live blocks, from the audit records. */
static int snapshot(struct search *s)
{
    size_t n = 0;
    for (size_t b = 0; b < AUDIT_BUCKETS; b++)
        for (struct audit_rec *r = audit_hash[b]; r; r = r->next)
            n++;
    s->cap = n + n / 4 + 1024;
    s->blk = debug_map(s->cap * sizeof *s->blk);
    s->stack = debug_map(s->cap * sizeof *s->stack);
    if (!s->blk || !s->stack)
        return -ENOMEM;
    for (size_t b = 0; b < AUDIT_BUCKETS && s->n < s->cap; b++) {
        if (!audit_hash[b])
            continue;
        pthread_mutex_lock(audit_lock(b));
        for (struct audit_rec *r = audit_hash[b]; r && s->n < s->cap;
             r = r->next) {
            if (r->state != AUDIT_ALLOCATED)
                continue;
            struct blk *k = &s->blk[s->n++];
            k->addr = r->addr;
            k->end = r->addr + (r->size ? r->size : 1);
            k->ns = r->alloc_ns;
            k->mark = BLK_LEAKED;
        }
        pthread_mutex_unlock(audit_lock(b));
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
        size_t b = audit_bucket(k->addr);
        pthread_mutex_lock(audit_lock(b));
        const struct audit_rec *r = __audit_find(b, k->addr);
        int same = r && r->state == AUDIT_ALLOCATED && r->alloc_ns == k->ns;
        if (same) {
            asked = r->asked;
            depth = r->alloc_depth;
            memcpy(stack, r->alloc_stack, depth * sizeof stack[0]);
        }
        pthread_mutex_unlock(audit_lock(b));
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
    int fd = open(kslab_opt.leaks_suppress, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        kslab_warn("KSLAB_LEAKS_SUPPRESS: cannot open %s",
                   kslab_opt.leaks_suppress);
        return 0;
    }
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
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
            out_line(fd, out,
                     "\n================================================="
                     "================\n==%d==ERROR: kslab: detected memory "
                     "leaks\n",
                     (int)getpid());
        out_line(fd, out,
                 "\n%s leak of %zu byte(s) in %zu object(s) allocated "
                 "from:\n",
                 g[i].kind == BLK_INDIRECT ? "Indirect" : "Direct", g[i].bytes,
                 g[i].count);
        print_stack(fd, out, g[i].stack, g[i].depth);
        bytes += g[i].bytes;
        count += g[i].count;
    }
    if (sup_count)
        out_line(fd, out,
                 "\nkslab: suppressed %zu byte(s) in %zu allocation(s)\n",
                 sup_bytes, sup_count);
    if (count)
        out_line(fd, out,
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
    if (!audit_hash) {
        out_line(fd, out, "kslab: the leak search needs KSLAB_DEBUG=leaks\n");
        return 0;
    }
    pthread_mutex_lock(&leak_lock);
    struct search s = {0};
    size_t bytes = 0, ng = 0, maxg = 0;
    struct leak_group *g = NULL;
    if (snapshot(&s))
        goto out;
    struct sigaction old_stop;
    int stopped = !stop_world(&old_stop);
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
        resume_world(&old_stop);
    maxg = s.n < 65536 ? s.n + 1 : 65536;
    g = debug_map(maxg * sizeof *g);
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
    size_t bytes = leak_check(LEAKS_LOG_FD, NULL);
    if (leaks_log_owned)
        close(leaks_log_fd);
    leaks_log_fd = -1;
    leaks_log_owned = 0;
    if (bytes && kslab_opt.leaks_exitcode) {
        fflush(NULL);
        _exit(kslab_opt.leaks_exitcode);
    }
}

/* ---- start-up ---- */

static void debug_fork_child(void)
{
    my_tid = 0;
    pthread_mutex_init(&freed_lock, NULL);
    for (int i = 0; i < AUDIT_LOCKS; i++)
        pthread_mutex_init(&audit_locks[i], NULL);
}

static void slab_debug_init(void)
{
    if (!(kslab_opt.dbg & KSLAB_DBG_TRACK))
        return;
    start_ns = now_ns();
    find_self_text();
    for (int i = 0; i < AUDIT_LOCKS; i++)
        pthread_mutex_init(&audit_locks[i], NULL);
    if (kslab_opt.dbg & KSLAB_DBG_AUDIT) {
        audit_cachep = slab_cache_create(
            "kslab-audit", sizeof(struct audit_rec), 0, 0, NULL, NULL, 0);
        audit_hash = audit_cachep
                         ? debug_map(AUDIT_BUCKETS * sizeof(*audit_hash))
                         : NULL;
        freed_ring = debug_map(AUDIT_KEEP_FREED * sizeof *freed_ring);
        if (!audit_hash)
            kslab_warn("KSLAB_DEBUG=audit: no memory for the records");
    }
    if (kslab_opt.dbg & KSLAB_DBG_LOG) {
        log_size = kslab_opt.log_entries;
        log_ring = debug_map(log_size * sizeof *log_ring);
        if (!log_ring)
            kslab_warn("KSLAB_DEBUG=log: no memory for the ring");
    }
    if (__atomic_load_n(&debug_ctor_ran, __ATOMIC_ACQUIRE))
        kslab_once(&unwinder_once, unwinder_choose);
    pthread_atfork(NULL, NULL, debug_fork_child);
    if (kslab_opt.dbg & KSLAB_DBG_LEAKS)
        atexit(leaks_at_exit);
    kslab_set_report_hook(debug_report);
    __atomic_store_n(&debug_ready, 1, __ATOMIC_RELEASE);
}
KSLAB_INITCALL(KSLAB_INIT_FORK, slab_debug_init);
