/*
 * lib/thread.c — kslab's one thread registry: which threads hold per-thread
 * state in some layer, and what each layer does when one of them exits
 * (the model is lib/fork.c's leveled hooks; libumem keeps its per-thread
 * state likewise in one place, umem's per-CPU caches).
 *
 * A thread gets a record (struct kslab_thread) at its first attach at any
 * level: the record goes on one list of threads and the one pthread key
 * is set to it.  The record has a slot per level (enum
 * kslab_thread_level): the slab's struct slab_thread, the frames' page
 * lists, the malloc layer's cache of large blocks.  Each layer keeps its
 * own thread-local pointer for its fast paths; the slot is how the other
 * threads find its state (a drain of every thread, a statistics sum, a
 * fork child) and how exit reaches it.  At thread exit the key's
 * destructor runs every registered level's hook in level order, upper
 * layers first (lib/thread.h), each with the thread's slot at that level,
 * then takes the record off the list.  After that, an attach in the same
 * thread is refused: a destructor of another key that frees later takes
 * each layer's own slow path down to the zones.
 *
 * Records live in the registry's own memory (kslab_host_map, carved into
 * records and never given back; a freed record waits on free_records),
 * not in the thread's: the thread-local storage holds one pointer to its
 * record.  Why: a walk reads every listed record, and a thread can exit
 * without its key's destructor.  glibc runs the destructors a bounded
 * number of rounds (PTHREAD_DESTRUCTOR_ITERATIONS) and then frees its own
 * per-thread state — free(3) of the dtvs of the stacks it evicts from its
 * stack cache, __libc_thread_freeres — so a thread whose first kslab call
 * is one of those frees attaches after its destructors ran, and its
 * record stays listed when the thread is gone.  Were the record in the
 * thread's TLS, a thread given the same cached stack would have it zeroed
 * by glibc (the TLS image is re-initialised) while it is still linked: a
 * walk then follows a NULL link (a fork child's, which walks every level).
 * Here such a record stays whole, its slots still hold the dead thread's
 * state (live memory, drained and summed like any other thread's), and
 * it is owned (owner) by the address of the thread-local pointer: a later
 * thread whose pointer has that address has that dead thread's TLS block,
 * and at its first attach takes the record over — slots and all, so an
 * attach at a level the record holds returns the dead thread's state for
 * the layer to use (kslab_thread_attach returns 1), and this thread's
 * exit runs the hooks on it.  A record whose TLS block no thread gets
 * again stays listed with its state: bounded by the threads that both
 * start using kslab after their destructors and have no successor.
 *
 * Locking: a lock per level guards every record's slot at that level; a
 * walk of a level (kslab_thread_next) holds it throughout, and its place
 * in the lock order is the layer's (lib/fork.c: the malloc layer's comes
 * first, then the slab's, then the frames').  list_lock guards the links
 * of the list, the owners and the free records and is a leaf: held only
 * inside this file, never across a call out.  A record leaves the list
 * with every level lock held, so no walk is on it; a record joins with
 * list_lock alone, so any path may attach (a page allocation under
 * another layer's locks).  Fork: each layer's prepare and parent take and
 * release its level's lock; lib/fork.c takes list_lock last and, in the
 * child, calls this file before the levels' child handlers (the locks
 * made anew) and after them (the records of the threads that did not
 * come along freed).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "lib/host.h"
#include "lib/list.h"
#include "lib/report.h"
#include "lib/thread.h"

/* One thread's record: in the registry's memory, never unmapped. */
struct kslab_thread {
    struct list_head link;              /* on threads or free_records,
                                           under list_lock */
    void *slot[KSLAB_THREAD_NR_LEVELS]; /* under the level's lock */
    struct kslab_thread **owner;        /* its thread's `self` (the TLS slot's
                                           address), under list_lock */
    int exiting; /* in its exit hooks: no attach (its own thread only) */
};

/* The calling thread's record, or NULL (none yet), &linking (being set
 * up: an attach from an allocation of pthread_setspecific is refused) or
 * &exited (past its exit hooks).  Neither sentinel is ever listed. */
static __thread struct kslab_thread *self
    __attribute__((tls_model("initial-exec")));
static struct kslab_thread linking, exited;

/* Records come in chunks of this many bytes. */
#define RECORD_CHUNK 16384UL

static _Atomic(const struct kslab_thread_hook *) hooks[KSLAB_THREAD_NR_LEVELS];
static pthread_mutex_t level_lock[KSLAB_THREAD_NR_LEVELS] = {
    [0 ... KSLAB_THREAD_NR_LEVELS - 1] = PTHREAD_MUTEX_INITIALIZER};
static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(threads);
static LIST_HEAD(free_records);
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void check_level(enum kslab_thread_level level)
{
    if ((unsigned int)level >= KSLAB_THREAD_NR_LEVELS)
        kslab_die("thread registry: bad level %d", (int)level);
}

void kslab_thread_lock(enum kslab_thread_level level)
{
    check_level(level);
    pthread_mutex_lock(&level_lock[level]);
}

void kslab_thread_unlock(enum kslab_thread_level level)
{
    check_level(level);
    pthread_mutex_unlock(&level_lock[level]);
}

static void set_slot(struct kslab_thread *t, enum kslab_thread_level level,
                     void *p)
{
    pthread_mutex_lock(&level_lock[level]);
    t->slot[level] = p;
    pthread_mutex_unlock(&level_lock[level]);
}

static int is_record(const struct kslab_thread *t)
{
    return t && t != &linking && t != &exited;
}

/* A free record (list_lock held; dropped meanwhile to map a chunk), or
 * NULL when the host has no memory. */
static struct kslab_thread *record_get(void)
{
    if (list_empty(&free_records)) {
        pthread_mutex_unlock(&list_lock);
        char *chunk = kslab_host_map(RECORD_CHUNK);
        pthread_mutex_lock(&list_lock);
        if (!chunk)
            return NULL;
        for (size_t off = 0; off + sizeof(struct kslab_thread) <= RECORD_CHUNK;
             off += sizeof(struct kslab_thread))
            list_add_tail(&((struct kslab_thread *)(chunk + off))->link,
                          &free_records);
    }
    struct kslab_thread *t =
        list_entry(free_records.next, struct kslab_thread, link);
    list_del(&t->link);
    return t;
}

/* list_lock held. */
static void record_put(struct kslab_thread *t)
{
    list_del(&t->link);
    memset(t, 0, sizeof *t);
    list_add(&t->link, &free_records);
}

/* The key's destructor: every level's hook, top to bottom, then the
 * record leaves the list (every level lock held: no walk is on it). */
static void thread_exit(void *arg)
{
    struct kslab_thread *t = arg;
    t->exiting = 1;
    for (int l = 0; l < KSLAB_THREAD_NR_LEVELS; l++) {
        const struct kslab_thread_hook *h =
            atomic_load_explicit(&hooks[l], memory_order_acquire);
        if (h)
            h->exit(t->slot[l]);
        if (t->slot[l])
            set_slot(t, l, NULL);
    }
    for (int l = 0; l < KSLAB_THREAD_NR_LEVELS; l++)
        pthread_mutex_lock(&level_lock[l]);
    pthread_mutex_lock(&list_lock);
    record_put(t);
    pthread_mutex_unlock(&list_lock);
    for (int l = KSLAB_THREAD_NR_LEVELS - 1; l >= 0; l--)
        pthread_mutex_unlock(&level_lock[l]);
    self = &exited;
}

static void make_key(void)
{
    if (pthread_key_create(&key, thread_exit))
        kslab_die("thread registry: pthread_key_create failed");
}

static void register_hook(enum kslab_thread_level level,
                          const struct kslab_thread_hook *hook)
{
    const struct kslab_thread_hook *old = NULL;
    if (!hook || !hook->exit)
        kslab_die("thread registry: level %d without a hook", (int)level);
    if (atomic_load_explicit(&hooks[level], memory_order_acquire) == hook)
        return;
    if (atomic_compare_exchange_strong_explicit(&hooks[level], &old, hook,
                                                memory_order_release,
                                                memory_order_acquire))
        return;
    if (old != hook)
        kslab_die("thread registry: level %d has a hook already", (int)level);
}

/* The calling thread's record: the one a dead thread with this TLS block
 * left listed (its owner is our `self`), or a new one.  NULL when the
 * host has no memory.  list_lock taken here. */
static struct kslab_thread *record_for_self(void)
{
    struct kslab_thread *t = NULL;
    struct list_head *p;
    pthread_mutex_lock(&list_lock);
    list_for_each(p, &threads)
    {
        struct kslab_thread *r = list_entry(p, struct kslab_thread, link);
        if (r->owner == &self) {
            t = r;
            goto out;
        }
    }
    t = record_get();
    if (t) {
        t->owner = &self;
        list_add_tail(&t->link, &threads);
    }
out:
    pthread_mutex_unlock(&list_lock);
    return t;
}

/* The first attach of a thread: its record, and the key set to it. */
static struct kslab_thread *thread_register(void)
{
    pthread_once(&key_once, make_key);
    /* pthread_setspecific may allocate: an attach meanwhile (from that
     * allocation) is refused, the layer's slow path goes on without */
    self = &linking;
    struct kslab_thread *t = record_for_self();
    if (!t || pthread_setspecific(key, t)) {
        /* a listed record stays ours (owner): the next attach finds it */
        self = NULL;
        return NULL;
    }
    self = t;
    return t;
}

int kslab_thread_attach(enum kslab_thread_level level,
                        const struct kslab_thread_hook *hook, void *p)
{
    check_level(level);
    register_hook(level, hook);
    struct kslab_thread *t = self;
    if (!t)
        t = thread_register();
    if (!is_record(t) || t->exiting)
        return -1;
    int inherited = 0;
    pthread_mutex_lock(&level_lock[level]);
    if (t->slot[level])
        inherited = 1; /* a dead thread's state, ours now */
    else
        t->slot[level] = p;
    pthread_mutex_unlock(&level_lock[level]);
    return inherited;
}

void kslab_thread_detach(enum kslab_thread_level level)
{
    check_level(level);
    struct kslab_thread *t = self;
    if (is_record(t) && t->slot[level])
        set_slot(t, level, NULL);
}

void kslab_thread_forget(struct kslab_thread *pos,
                         enum kslab_thread_level level)
{
    check_level(level);
    pos->slot[level] = NULL;
}

void *kslab_thread_slot(enum kslab_thread_level level)
{
    check_level(level);
    struct kslab_thread *t = self;
    return is_record(t) ? t->slot[level] : NULL;
}

void *kslab_thread_next(enum kslab_thread_level level,
                        struct kslab_thread **pos)
{
    void *slot = NULL;
    check_level(level);
    pthread_mutex_lock(&list_lock);
    struct list_head *p = *pos ? (*pos)->link.next : threads.next;
    *pos = NULL;
    for (; p != &threads; p = p->next) {
        struct kslab_thread *t = list_entry(p, struct kslab_thread, link);
        if (t->slot[level]) {
            *pos = t;
            slot = t->slot[level];
            break;
        }
    }
    pthread_mutex_unlock(&list_lock);
    return slot;
}

void kslab_thread_fork_prepare(void)
{
    pthread_mutex_lock(&list_lock);
}

void kslab_thread_fork_parent(void)
{
    pthread_mutex_unlock(&list_lock);
}

/* Before the levels' child handlers: every lock made anew (a level whose
 * layer has no fork hook, the malloc layer in a program without it, may
 * have been held by a thread that did not come along). */
void kslab_thread_fork_child(void)
{
    pthread_mutex_init(&list_lock, NULL);
    for (int l = 0; l < KSLAB_THREAD_NR_LEVELS; l++)
        pthread_mutex_init(&level_lock[l], NULL);
}

/* After them: the other threads' records are gone with their threads
 * (every level forgot their slots). */
void kslab_thread_fork_prune(void)
{
    struct list_head *p, *n;
    list_for_each_safe(p, n, &threads)
    {
        struct kslab_thread *t = list_entry(p, struct kslab_thread, link);
        if (t != self)
            record_put(t);
    }
}
