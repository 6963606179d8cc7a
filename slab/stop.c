/*
 * slab/stop.c — stopping the other threads for the leak search.
 *
 * As LeakSanitizer's StopTheWorld, but from inside the process: each
 * other thread gets STOP_SIGNAL, whose handler notes where its stack is
 * in use (the handler's own frame: below it nothing is live; above it are
 * the kernel's signal frame, which holds every register the thread had,
 * and the interrupted frames) and waits on a futex until the search is
 * over.  A thread that blocks the signal (kslab's background purge thread
 * blocks all), does not answer within STOP_WAIT_NS or started after the
 * list was read is not stopped: its stack mapping is scanned whole, as it
 * runs.  The program's own handler of STOP_SIGNAL, if any,
 * is put back after the search.
 *
 * The table of stopped threads (stop_tab) belongs to the one search under
 * way (slab/leaks.c serialises them); the threads and the searcher meet
 * through atomic states and the futex stop_epoch, no lock.  Every host
 * call (the thread list and SigBlk from /proc, tgkill, the futex, the
 * clock, sigaction) goes through vm/frames/os.h.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/host.h"
#include "lib/report.h"
#include "slab/debug_internal.h"
#include "vm/frames/os.h"

#define STOP_SIGNAL SIGPWR
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
    int me = vm_os_gettid();
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
            vm_os_futex_wait(&stop_epoch, e);
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
    if (vm_os_read_file(path, buf, sizeof buf) <= 0)
        return 1;
    const char *p = strstr(buf, "\nSigBlk:");
    if (!p)
        return 0;
    unsigned long long mask = strtoull(p + 8, NULL, 16);
    return (mask >> (STOP_SIGNAL - 1)) & 1;
}
/* One thread of the process (vm_os_for_each_thread): in the table unless
 * it is the caller (self) or would never answer. */
static void stop_one(int tid, void *self)
{
    if (tid != *(int *)self && !stop_blocked(tid))
        stop_add(tid);
}

/* The threads of the process but the caller, from /proc/self/task (read
 * with getdents64: no malloc, as opendir would). */
static void stop_list(int self)
{
    static char buf[8192];
    vm_os_for_each_thread(buf, sizeof buf, stop_one, &self);
}
int slab_stop_world(struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop_handler;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    stop_n = 0;
    stop_list(vm_os_gettid());
    if (!stop_n)
        return 0;
    int err = vm_os_sigaction(STOP_SIGNAL, &sa, old);
    if (err)
        return err;
    __atomic_add_fetch(&stop_epoch, 1, __ATOMIC_ACQ_REL); /* odd */
    for (int i = 0; i < stop_n; i++)
        if (vm_os_signal_thread(stop_tab[i].tid, STOP_SIGNAL))
            stop_tab[i].state = STOP_NONE; /* gone meanwhile */
    uint64_t until = vm_os_now_ns() + STOP_WAIT_NS;
    for (;;) {
        int waiting = 0;
        for (int i = 0; i < stop_n; i++)
            waiting += __atomic_load_n(&stop_tab[i].state, __ATOMIC_ACQUIRE) ==
                       STOP_SENT;
        if (!waiting || vm_os_now_ns() > until)
            break;
        kslab_host_yield();
    }
    return 0;
}

void slab_resume_world(const struct sigaction *old)
{
    if (!stop_n)
        return;
    __atomic_add_fetch(&stop_epoch, 1, __ATOMIC_ACQ_REL); /* even */
    vm_os_futex_wake_all(&stop_epoch);
    for (int i = 0; i < stop_n; i++) {
        int sent = STOP_SENT;
        /* never answered: a late handler finds the slot taken back */
        if (__atomic_compare_exchange_n(&stop_tab[i].state, &sent, STOP_NONE, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            continue;
        uint64_t until = vm_os_now_ns() + STOP_WAIT_NS;
        while (__atomic_load_n(&stop_tab[i].state, __ATOMIC_ACQUIRE) ==
                   STOP_HELD &&
               vm_os_now_ns() < until)
            kslab_host_yield();
    }
    vm_os_sigaction(STOP_SIGNAL, old, NULL);
    __atomic_store_n(&stop_n, 0, __ATOMIC_RELEASE);
}

uintptr_t slab_stopped_sp_in(uintptr_t lo, uintptr_t hi)
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
