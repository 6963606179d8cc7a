/*
 * lib/thread.c — kslab's one thread registry: which threads hold per-thread
 * state in some layer, and what each layer does when one of them exits
 * (the model is lib/fork.c's leveled hooks; libumem keeps its per-thread
 * state likewise in one place, umem's per-CPU caches).
 *
 * A thread gets a record (struct kslab_thread, in its own thread-local
 * storage) at its first attach at any level: the record goes on one list
 * of threads and the one pthread key is set to it.  The record has a slot
 * per level (enum kslab_thread_level): the slab's struct slab_thread, the
 * frames' page lists, the malloc layer's cache of large blocks.  Each
 * layer keeps its own thread-local pointer for its fast paths; the slot
 * is how the other threads find its state (a drain of every thread, a
 * statistics sum, a fork child) and how exit reaches it.  At thread exit
 * the key's destructor runs every registered level's hook in level order,
 * upper layers first (lib/thread.h), each with the thread's slot at that
 * level, then takes the record off the list.  After that, an attach in
 * the same thread is refused: a destructor of another key that frees
 * later takes each layer's own slow path down to the zones.
 *
 * Locking: a lock per level guards every record's slot at that level; a
 * walk of a level (kslab_thread_next) holds it throughout, and its place
 * in the lock order is the layer's (lib/fork.c: the malloc layer's comes
 * first, then the slab's, then the frames').  list_lock guards the links
 * of the list and is a leaf: held only inside this file, never across a
 * call out.  A record leaves the list with every level lock held, so no
 * walk is on it; a record joins with list_lock alone, so any path may
 * attach (a page allocation under another layer's locks).  Fork: each
 * layer's prepare and parent take and release its level's lock;
 * lib/fork.c takes list_lock last and, in the child, calls this file
 * before the levels' child handlers (the locks made anew) and after them
 * (the records of the threads that did not come along forgotten).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "lib/list.h"
#include "lib/report.h"
#include "lib/thread.h"

enum { T_NONE, T_LINKING, T_LIVE, T_EXITING };

struct kslab_thread {
    struct list_head link;              /* on threads, under list_lock */
    void *slot[KSLAB_THREAD_NR_LEVELS]; /* under the level's lock */
    int state;                          /* T_*: its own thread only */
};

static __thread struct kslab_thread self
    __attribute__((tls_model("initial-exec")));

static _Atomic(const struct kslab_thread_hook *) hooks[KSLAB_THREAD_NR_LEVELS];
static pthread_mutex_t level_lock[KSLAB_THREAD_NR_LEVELS] = {
    [0 ... KSLAB_THREAD_NR_LEVELS - 1] = PTHREAD_MUTEX_INITIALIZER};
static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(threads);
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

static void set_slot(enum kslab_thread_level level, void *p)
{
    pthread_mutex_lock(&level_lock[level]);
    self.slot[level] = p;
    pthread_mutex_unlock(&level_lock[level]);
}

/* The key's destructor: every level's hook, top to bottom, then the
 * record leaves the list (every level lock held: no walk is on it). */
static void thread_exit(void *arg)
{
    struct kslab_thread *t = arg;
    t->state = T_EXITING;
    for (int l = 0; l < KSLAB_THREAD_NR_LEVELS; l++) {
        const struct kslab_thread_hook *h =
            atomic_load_explicit(&hooks[l], memory_order_acquire);
        if (h)
            h->exit(t->slot[l]);
        if (t->slot[l])
            set_slot(l, NULL);
    }
    for (int l = 0; l < KSLAB_THREAD_NR_LEVELS; l++)
        pthread_mutex_lock(&level_lock[l]);
    pthread_mutex_lock(&list_lock);
    list_del(&t->link);
    pthread_mutex_unlock(&list_lock);
    for (int l = KSLAB_THREAD_NR_LEVELS - 1; l >= 0; l--)
        pthread_mutex_unlock(&level_lock[l]);
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

int kslab_thread_attach(enum kslab_thread_level level,
                        const struct kslab_thread_hook *hook, void *p)
{
    check_level(level);
    register_hook(level, hook);
    if (self.state == T_NONE) {
        pthread_once(&key_once, make_key);
        /* pthread_setspecific may allocate: an attach meanwhile (from that
         * allocation) is refused, the layer's slow path goes on without */
        self.state = T_LINKING;
        if (pthread_setspecific(key, &self)) {
            self.state = T_NONE;
            return -1;
        }
        pthread_mutex_lock(&list_lock);
        list_add_tail(&self.link, &threads);
        pthread_mutex_unlock(&list_lock);
        self.state = T_LIVE;
    }
    if (self.state != T_LIVE)
        return -1;
    set_slot(level, p);
    return 0;
}

void kslab_thread_detach(enum kslab_thread_level level)
{
    check_level(level);
    if (self.slot[level])
        set_slot(level, NULL);
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
    return self.slot[level];
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

/* After them: the other threads' records are gone with their threads. */
void kslab_thread_fork_prune(void)
{
    struct list_head *p, *n;
    list_for_each_safe(p, n, &threads)
    {
        struct kslab_thread *t = list_entry(p, struct kslab_thread, link);
        if (t != &self)
            list_del(&t->link);
    }
}
