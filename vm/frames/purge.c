/*
 * vm/frames/purge.c — giving free frames back to the host: the decay pass,
 * its registry, the background purge thread and the slow paths' ticks.
 *
 * Time decay, after jemalloc's dirty_decay_ms: a freed block stays
 * "dirty" (it holds host memory) on its zone's dirty lists, most recently
 * freed first, its head stamped with the time it was freed (page->private,
 * vm_now_ms(), buddy.c).  Allocation takes dirty blocks first, so a
 * program whose heap swings by any amount within PURGE_DECAY_MS makes no
 * madvise at all.  A block that has stayed free for PURGE_DECAY_MS goes
 * back to the host, whatever its order: single free frames between live
 * slabs too, so RSS falls to near the live size after a program frees
 * most of its heap.  A pass takes the eligible blocks off the lists in
 * batches (largest orders first, oldest first, every order of both
 * pageblock types), sorts a batch by frame and gives back each run of
 * adjacent blocks with one madvise(MADV_DONTNEED) (vm_os_purge), so
 * scattered small blocks cost one call per run, not per block.
 * MADV_DONTNEED, not MADV_FREE: a clean block must read as zero
 * (PG_clean), and RSS must fall for the frames to be seen as given back.
 * No system call is made under a zone lock: a pass unlinks a batch (the
 * heads lose PG_buddy, so neither __rmqueue nor a neighbour's coalescing
 * can see them; zone->purging_pages counts them), drops the lock,
 * madvises, retakes the lock and frees the blocks onto the clean lists,
 * merging as usual; an allocation that found the zone empty meanwhile
 * waits for them (purge_done).  The layers above register memory that
 * decays the same way (vm_purge_register: slab/'s empty slabs,
 * interpose/'s cached mappings); each pass calls them with no kslab lock
 * held.
 *
 * Who runs the passes (jemalloc's decay without and with its
 * background_thread).  The allocator's own slow paths tick: a free that
 * reaches a zone (a slab's pages, a large block), a
 * slab flush that leaves empty slabs, a freed huge block.  A tick reads
 * the coarse clock (no system call) and, at most once per PURGE_TICK_MS
 * in the whole process, runs a pass in the calling thread; the hot paths
 * (a thread's arrays) never tick.  A program that frees its
 * heap and then sleeps makes no such call, so a background thread runs the
 * passes too, but only once the memory waiting for the decay is worth a
 * thread: PURGE_THREAD_PAGES (8 MiB) of dirty frames in a zone, or of what
 * the layers above keep (vm_purge_kick).  A short program (a script, ls,
 * git status) never has a second thread, which a debugger, /proc and a
 * fork() in a threaded program would see; glibc, jemalloc by default,
 * mimalloc and tcmalloc start none either.  What stays below the mark in a
 * program that sleeps is kept until its next tick, as jemalloc without
 * background_thread keeps it.  The thread wakes every PURGE_TICK_MS (a
 * zone with no allocation during a whole tick is idle: its blocks go back
 * after a quarter of the decay time), and exits once nothing has waited
 * for the decay for PURGE_IDLE_TICKS ticks (so a process whose main thread
 * calls pthread_exit() is not kept alive for long; it is detached).  It
 * runs with every signal blocked and is never in a fork child: the fork
 * hook marks it stopped there and the next free that is worth it starts a
 * new one.  Where it starts: pthread_create takes glibc's stack-cache
 * lock (dl_stack_cache_lock), and glibc frees under that very lock — the
 * dtv and dynamic TLS of a thread whose stack it releases or evicts, in
 * the exiting thread or in its joiner — so a free that started the thread
 * could deadlock on itself.  A free starts it only while glibc says the
 * process never had a second thread (__libc_single_threaded: then no
 * thread exit or join can be under way in the caller); otherwise it only
 * asks (vm_purge_wanted), and the next allocation of frames for the slab
 * (vm_alloc_pages_type, vm_purge_safe_point: glibc allocates under none
 * of its thread locks) starts it.  A timer (timer_create) would also fire
 * without the program's help, but SIGEV_SIGNAL takes a signal from the program
 * and SIGEV_THREAD is a thread anyway, without control of its signal mask or
 * lifetime. When the thread cannot be created, the ticks are all there is. With
 * KSLAB_DECAY_MS=never nothing goes back by time: no tick, no thread.
 * vm_purge_threshold (mallopt(M_TRIM_THRESHOLD)) is an optional hard cap:
 * a free that leaves more dirty memory than that gives the oldest back at
 * once (outside the lock) down to half of it; by default there is no cap.
 * vm_release_free() (malloc_trim, kmem_cache_reap, kmem_cache_shrink) and
 * vm_release_sections() give every free block, or section, back at once,
 * whatever the decay says.  Locking: purge_lock serialises the passes
 * (it comes first in the frames' order, internal.h); a tick only tries
 * it.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define PROCESS_SINGLE_THREADED() (__libc_single_threaded != 0)
#else
#define PROCESS_SINGLE_THREADED() 0 /* not known: never from a free */
#endif

#include "lib/assert.h"
#include "vm/frames/internal.h"
#include "vm/frames/os.h"
#include "vm/frames/page.h"

/* A dirty free block goes back to the host once it has been free this long. */
#define PURGE_DECAY_MS 1000UL
/* The background purge wakes this often. */
#define PURGE_TICK_MS 100UL
/* ... and exits after this many ticks with no dirty memory in any zone. */
#define PURGE_IDLE_TICKS 50
/* Dirty memory that is worth a background thread (8 MiB): below it, the
 * slow paths' ticks give it back. */
#define PURGE_THREAD_PAGES 2048UL
/* Blocks taken off the lists per lock hold of a purge pass. */
#define PURGE_BATCH 256
/* Serialises purge passes (and is what the fork hook waits on while a pass
 * has blocks off the lists). */
static pthread_mutex_t purge_lock = PTHREAD_MUTEX_INITIALIZER;
/* Broadcast (under a zone lock) when a purge batch is back on the lists:
 * an allocation that found the zone empty while frames were off the lists
 * waits for them rather than fail. */
static pthread_cond_t purge_done = PTHREAD_COND_INITIALIZER;

unsigned long vm_purge_threshold = ULONG_MAX; /* no cap unless mallopt */
unsigned long vm_purge_decay_ms = PURGE_DECAY_MS;
void (*vm_purge_hook)(void *addr, size_t len);

struct purge_item {
    unsigned long pfn;
    unsigned int order;
};

/* Gives a batch of blocks that are off the lists back to the host, one
 * madvise per run of adjacent blocks.  No lock held but purge_lock. */
static void purge_batch_os(struct purge_item *b, int n)
{
    for (int i = 1; i < n; i++) { /* by frame: a batch is small */
        struct purge_item x = b[i];
        int j = i;
        for (; j > 0 && b[j - 1].pfn > x.pfn; j--)
            b[j] = b[j - 1];
        b[j] = x;
    }
    void (*hook)(void *, size_t) =
        __atomic_load_n(&vm_purge_hook, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n;) {
        unsigned long start = b[i].pfn;
        unsigned long end = start + (1UL << b[i].order);
        char *addr = vm_pfn_address(start);
        /* one run: adjacent frames, in one section (or adjacent ones) */
        for (i++; i < n && b[i].pfn == end &&
                  vm_pfn_address(end) == addr + ((end - start) << PAGE_SHIFT);
             i++)
            end += 1UL << b[i].order;
        size_t len = (end - start) << PAGE_SHIFT;
        if (hook)
            hook(addr, len);
        vm_os_purge(addr, len);
    }
}

/* Gives back dirty free blocks of zone of order >= min_order that became
 * free at or before `before` (ms; ULONG_MAX: any), largest orders first and
 * the least recently freed first, until at most keep dirty frames are left.
 * Batches are unlinked under the zone lock, madvised without it and freed
 * onto the clean lists under it again.  purge_lock held.  Returns the
 * frames given back. */
static unsigned long zone_purge(struct zone_struct *zone,
                                unsigned int min_order, unsigned long keep,
                                unsigned long before)
{
    struct purge_item batch[PURGE_BATCH];
    unsigned long released = 0, budget;
    pthread_mutex_lock(&zone->lock);
    budget = 2 * zone->free_pages + 1; /* bounds a pass racing with frees */
    pthread_mutex_unlock(&zone->lock);
    while (released < budget) {
        int n = 0;
        unsigned long pages = 0;
        pthread_mutex_lock(&zone->lock);
        /* every order and both pageblock types are eligible */
        for (int o = MAX_ORDER - 1; o >= (int)min_order && n < PURGE_BATCH;
             o--) {
            for (int t = 0; t < PB_TYPES; t++) {
                struct list_head *list = &zone->free_area[o].free_list[t];
                while (n < PURGE_BATCH && !list_empty(list) &&
                       zone->dirty_pages > keep) {
                    struct page *page =
                        list_entry(list->prev, struct page, list);
                    if (page->private > before)
                        break; /* the rest of the list is younger */
                    /* Off the lists, PG_buddy cleared: neither allocated
                     * nor merged with a neighbour until it comes back. */
                    vm_del_free_block(zone, page, (unsigned int)o);
                    batch[n].pfn = vm_page_to_pfn(page);
                    batch[n].order = (unsigned int)o;
                    n++;
                    pages += 1UL << o;
                }
            }
        }
        zone->purging_pages += pages;
        pthread_mutex_unlock(&zone->lock);
        if (!n)
            break;
        purge_batch_os(batch, n);
        pthread_mutex_lock(&zone->lock);
        for (int i = 0; i < n; i++)
            vm_free_one_block(zone, batch[i].pfn, batch[i].order, 1);
        zone->purging_pages -= pages;
        zone->released_pages += pages;
        pthread_cond_broadcast(&purge_done);
        pthread_mutex_unlock(&zone->lock);
        released += pages;
    }
    return released;
}

unsigned long vm_dirty_pages(void)
{
    unsigned long d = 0;
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++) {
        pthread_mutex_lock(&vm_zones[z].lock);
        d += vm_zones[z].dirty_pages;
        pthread_mutex_unlock(&vm_zones[z].lock);
    }
    return d;
}

/* The layers above's memory that decays too (slab/slab.c's empty slabs,
 * interpose/huge_pool.c's cached mappings): called by each pass with no kslab
 * lock held, in the order registered. */
#define PURGE_EXTRA_MAX 4
static unsigned long (*_Atomic purge_extra[PURGE_EXTRA_MAX])(
    unsigned long now, unsigned long decay);

void vm_purge_register(unsigned long (*fn)(unsigned long now,
                                           unsigned long decay))
{
    for (int i = 0; i < PURGE_EXTRA_MAX; i++) {
        unsigned long (*old)(unsigned long, unsigned long) = NULL;
        if (atomic_compare_exchange_strong(&purge_extra[i], &old, fn) ||
            old == fn)
            return;
    }
    kslab_die("vm_purge_register(): more than %d users", PURGE_EXTRA_MAX);
}

/* Memory left to decay: dirty frames plus what purge_extra still holds
 * (now 0: only counted, nothing given back). */
static unsigned long pending_total(unsigned long now, unsigned long decay)
{
    unsigned long n = 0;
    for (int i = 0; i < PURGE_EXTRA_MAX; i++) {
        unsigned long (*fn)(unsigned long, unsigned long) =
            atomic_load(&purge_extra[i]);
        if (fn)
            n += fn(now, decay);
    }
    return n + vm_dirty_pages();
}

/* The zones' part of a decay pass (purge_lock held): every block free for
 * `decay` ms goes back, and in a zone nobody allocated from since the last
 * pass (a program that sleeps, or only frees, has no use for its dirty
 * memory) every block free for a quarter of that. */
static void __purge_zones(unsigned long now, unsigned long decay)
{
    static unsigned long seen_allocs[ZONE_NORMAL + 1];
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++) {
        pthread_mutex_lock(&vm_zones[z].lock);
        unsigned long allocs = vm_zones[z].nr_allocs;
        pthread_mutex_unlock(&vm_zones[z].lock);
        unsigned long before = now >= decay ? now - decay : 0;
        if (allocs == seen_allocs[z] && now >= decay / 4)
            before = now - decay / 4; /* idle zone */
        seen_allocs[z] = allocs;
        zone_purge(&vm_zones[z], 0, 0, before);
        /* whole sections free that long go back too (address space) */
        if (z == ZONE_NORMAL &&
            __atomic_load_n(&vm_lowmem_sectioned, __ATOMIC_RELAXED))
            vm_lowmem_release_sections(before);
    }
}

/* One decay pass of the background thread: the zones, then the layers
 * above (purge_extra).  Returns the memory left to decay (pages). */
static unsigned long purge_pass(void)
{
    unsigned long decay = __atomic_load_n(&vm_purge_decay_ms, __ATOMIC_RELAXED);
    unsigned long now = vm_now_ms();
    if (decay == ULONG_MAX)
        return vm_dirty_pages();
    pthread_mutex_lock(&purge_lock);
    __purge_zones(now, decay);
    pthread_mutex_unlock(&purge_lock);
    return pending_total(now, decay);
}

/* The background purge: idle (not running), running, or none (it could
 * not be created: the slow paths' ticks are all there is). */
enum { PURGER_IDLE, PURGER_RUNNING, PURGER_NONE };
static _Atomic int purger_state;
/* When a tick last ran a pass (ms of the coarse clock). */
static _Atomic unsigned long purger_last_ms;
static _Thread_local int purger_starting;
/* A free found the background purge worth starting in a process with
 * threads: the next allocating entry starts it (vm_purge_safe_point). */
int vm_purge_wanted;
unsigned long vm_purge_starts;

__thread int vm_internal_thread;
void (*vm_purge_create_hook)(int begin);

static void *purger_main(void *arg)
{
    (void)arg;
    vm_internal_thread = 1; /* to its exit: glibc frees its TLS then */
    int idle = 0;
    for (;;) {
        vm_os_sleep_ms(PURGE_TICK_MS);
        if (purge_pass()) {
            idle = 0;
            continue;
        }
        if (++idle < PURGE_IDLE_TICKS)
            continue;
        atomic_store(&purger_state, PURGER_IDLE);
        /* A free between the pass and the store saw us running and did
         * not start a thread: look once more. */
        int expect = PURGER_IDLE;
        if (!pending_total(0, 0) || !atomic_compare_exchange_strong(
                                        &purger_state, &expect, PURGER_RUNNING))
            return NULL;
        idle = 0;
    }
}

/* Starts the background purge unless it runs (or could not be made). */
static __cold __noinline void purger_start(void)
{
    int expect = PURGER_IDLE;
    if (purger_starting ||
        !atomic_compare_exchange_strong(&purger_state, &expect, PURGER_RUNNING))
        return;
    /* pthread_create allocates (the new thread's TLS): no kslab lock of
     * the frames is held here, and purger_starting stops a nested start. */
    purger_starting = 1;
    sigset_t all, old;
    sigfillset(&all);
    vm_os_sigmask(SIG_SETMASK, &all, &old); /* the thread takes none */
    pthread_attr_t attr;
    pthread_t t;
    int err = pthread_attr_init(&attr);
    if (!err) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64UL << 10);
        vm_internal_thread++; /* the new thread's TLS: kslab's */
        void (*hook)(int) = vm_purge_create_hook;
        if (hook)
            hook(1);
        err = pthread_create(&t, &attr, purger_main, NULL);
        if (hook)
            hook(0);
        vm_internal_thread--;
        pthread_attr_destroy(&attr);
    }
    vm_os_sigmask(SIG_SETMASK, &old, NULL);
    purger_starting = 0;
    if (err)
        atomic_store(&purger_state, PURGER_NONE);
    else
        __atomic_add_fetch(&vm_purge_starts, 1, __ATOMIC_RELAXED);
}

/* A free path found the background purge worth starting: only where no
 * glibc thread lock can be held by the caller (the file's story). */
static void purger_start_from_free(void)
{
    if (PROCESS_SINGLE_THREADED())
        purger_start();
    else
        __atomic_store_n(&vm_purge_wanted, 1, __ATOMIC_RELAXED);
}

void vm_purge_safe_point_slow(void)
{
    if (purger_starting ||
        !__atomic_exchange_n(&vm_purge_wanted, 0, __ATOMIC_RELAXED))
        return;
    if (atomic_load_explicit(&purger_state, memory_order_relaxed) ==
        PURGER_IDLE)
        purger_start();
}

/*
 * A tick of a slow path: once per PURGE_TICK_MS in the process, a pass in
 * the calling thread, and the background purge started when what is left
 * is worth it.  extras: the layers above's memory too (purge_extra), which
 * takes their locks (the slab's chain and caches, the huge-block table),
 * so only a caller that holds no kslab lock may ask for it; the zones'
 * part takes only the frames' own locks, which no tick's caller holds, and
 * it is skipped when a pass is under way (purge_lock is tried, not
 * waited for).
 */
static __cold __noinline void purger_tick(unsigned long decay, int extras)
{
    unsigned long now = vm_now_ms();
    unsigned long last =
        atomic_load_explicit(&purger_last_ms, memory_order_relaxed);
    if (now - last < PURGE_TICK_MS ||
        !atomic_compare_exchange_strong(&purger_last_ms, &last, now))
        return;
    if (pthread_mutex_trylock(&purge_lock) == 0) {
        __purge_zones(now, decay);
        pthread_mutex_unlock(&purge_lock);
    }
    unsigned long left = extras ? pending_total(now, decay) : vm_dirty_pages();
    if (left >= PURGE_THREAD_PAGES)
        purger_start_from_free();
}

/* After a free on a slow path: dirty is what the caller saw waiting for
 * the decay (pages), extras as for purger_tick.  Costs a load and a test
 * while the background purge runs, one clock read otherwise. */
static void purger_kick(unsigned long dirty, int extras)
{
    int state = atomic_load_explicit(&purger_state, memory_order_relaxed);
    if (likely(state == PURGER_RUNNING) || purger_starting)
        return;
    unsigned long decay = __atomic_load_n(&vm_purge_decay_ms, __ATOMIC_RELAXED);
    if (decay == ULONG_MAX)
        return; /* nothing goes back by time */
    if (dirty >= PURGE_THREAD_PAGES && state == PURGER_IDLE)
        purger_start_from_free();
    else
        purger_tick(decay, extras);
}

void vm_purge_kick(void)
{
    if (!vm_lowmem.ready ||
        atomic_load_explicit(&purger_state, memory_order_relaxed) ==
            PURGER_RUNNING)
        return;
    /* A layer above freed memory it keeps for the decay (a huge block's
     * range), no lock held: is all that waits now worth a thread? */
    unsigned long decay = __atomic_load_n(&vm_purge_decay_ms, __ATOMIC_RELAXED);
    int idle = atomic_load_explicit(&purger_state, memory_order_relaxed) ==
               PURGER_IDLE;
    purger_kick(idle && decay != ULONG_MAX ? pending_total(0, 0) : 0, 1);
}

void vm_purge_tick(void)
{
    if (vm_lowmem.ready)
        purger_kick(0, 0);
}

/* Called by every free path that reached a zone, after it dropped the
 * zone lock; over: the free left more dirty memory than the cap
 * (vm_purge_threshold, vm_over_cap()); dirty: the zone's dirty frames
 * then. */
void vm_purge_after_free(struct zone_struct *zone, int over,
                         unsigned long dirty)
{
    if (unlikely(over) && pthread_mutex_trylock(&purge_lock) == 0) {
        unsigned long t =
            __atomic_load_n(&vm_purge_threshold, __ATOMIC_RELAXED);
        zone_purge(zone, 0, t / 2, ULONG_MAX);
        pthread_mutex_unlock(&purge_lock);
    }
    purger_kick(dirty, 0);
}

unsigned long vm_release_free(unsigned int min_order, unsigned long keep)
{
    unsigned long n = 0;
    if (!vm_lowmem.ready)
        return 0;
    pthread_mutex_lock(&purge_lock);
    unsigned long now = vm_now_ms();
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++)
        n += zone_purge(&vm_zones[z], min_order, keep, now);
    /* under a limit, whole free sections go too (their address space) */
    if (!keep && __atomic_load_n(&vm_lowmem_sectioned, __ATOMIC_RELAXED))
        n += vm_lowmem_release_sections(ULONG_MAX) >> PAGE_SHIFT;
    pthread_mutex_unlock(&purge_lock);
    return n;
}

size_t vm_release_sections(void)
{
    if (!vm_lowmem.ready ||
        !__atomic_load_n(&vm_lowmem_sectioned, __ATOMIC_RELAXED))
        return 0;
    pthread_mutex_lock(&purge_lock);
    size_t bytes = vm_lowmem_release_sections(ULONG_MAX);
    pthread_mutex_unlock(&purge_lock);
    return bytes;
}

/* The zone could not grow and had no block: waits while a purge pass has
 * free blocks off the lists (they come back within one madvise), which
 * with a short decay time can be most of the zone.  Returns 1 after a
 * wait (try again), 0 when nothing was off the lists (no lock held). */
int vm_zone_wait_purge(struct zone_struct *zone)
{
    int waited = 0;
    pthread_mutex_lock(&zone->lock);
    while (zone->purging_pages) {
        pthread_cond_wait(&purge_done, &zone->lock);
        waited = 1;
    }
    pthread_mutex_unlock(&zone->lock);
    return waited;
}

/* ---- fork (the frames' hook, lowmem.c) ---- */

void vm_purge_fork_prepare(void)
{
    pthread_mutex_lock(&purge_lock);
}

void vm_purge_fork_parent(void)
{
    pthread_mutex_unlock(&purge_lock);
}

void vm_purge_fork_child(void)
{
    pthread_mutex_init(&purge_lock, NULL);
    pthread_cond_init(&purge_done, NULL);
    /* The background purge did not come along: the next free starts one
     * (one that could not be created gets another try).  ThreadSanitizer
     * kills a fork child of a threaded process that starts a thread, and
     * AddressSanitizer's allocator can be left locked there by a thread of
     * the parent (a thread started in the child then waits forever in its
     * first calloc): under either the child's frees run the passes
     * themselves. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    atomic_store(&purger_state, PURGER_NONE);
#else
    atomic_store(&purger_state, PURGER_IDLE);
#endif
    atomic_store(&purger_last_ms, 0);
    __atomic_store_n(&vm_purge_wanted, 0, __ATOMIC_RELAXED);
}
