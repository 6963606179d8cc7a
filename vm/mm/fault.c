/*
 * vm/mm/fault.c — real hardware faults.  Each mm's window is registered in a
 * fixed table that the SIGSEGV handler scans without a lock (slots are
 * published with release stores).  The handler turns the host address into
 * (mm, user address), reads from the CPU's error code whether the access
 * was a write, takes the mm's mmap_sem, grows a stack the address is just
 * below (vm_expand_stack), checks the access against the vma as 2.4's
 * do_page_fault does, calls __handle_mm_fault and returns so the
 * instruction is retried.  An access that the mapping cannot back (a page
 * wholly beyond the end of its file) becomes a SIGBUS with BUS_ADRERR, as
 * Linux delivers it (force_sigbus).  A real error (no vma, an access the
 * vma does not allow, out of memory) or a fault outside every window goes
 * to the handler that was installed before ours; if there was
 * none, the default action is restored and the fault repeats, so the
 * process dies of SIGSEGV as it would have without kslab.
 *
 * Once kslab's handler is installed it stays first, whoever installs a
 * SIGSEGV handler later: this file exports sigaction(), signal() and
 * bsd_signal() (libkslab.so and libkslab.a only — the preload library has
 * no emulator), which for SIGSEGV record the program's handler as the one
 * kslab chains to and report it back, as the JVM's signal chaining does;
 * every other signal, and SIGSEGV before the first mm, goes to libc's
 * __sigaction.  kslab itself calls __sigaction (vm_os_sigaction,
 * vm/frames/os.c), never the wrapper.
 *
 * A fault on emulated memory must be deliverable in every thread: Linux
 * kills a process whose synchronous SIGSEGV or SIGBUS is blocked, before
 * any handler runs.  So the same libraries export sigprocmask(),
 * pthread_sigmask(), sigblock(), sigsetmask() and sighold(), which never
 * block SIGSEGV and SIGBUS
 * (everything else in the set is blocked as asked), and sigaction() drops
 * them from every handler's sa_mask, as the kernel drops SIGKILL and
 * SIGSTOP.  The old mask they report is the one in force, without
 * SIGSEGV and SIGBUS.  The trade: a SIGSEGV or SIGBUS sent with kill()
 * cannot be blocked in a program linked with libkslab.so or libkslab.a.
 * The program's own SIGSEGV/SIGBUS handler is still run as the kernel
 * runs it (chain(): the signal itself blocked unless SA_NODEFER), so that
 * a handler that faults again dies instead of recursing.
 *
 * Which path serves which fault (figures: bench/README.md).  SIGSEGV
 * back end, every fault of a window comes here: a write to untouched
 * private anonymous memory maps its fault-around window (memory.c,
 * KSLAB_VM_FAULT_AROUND) — one signal and one mmap for up to 16 pages —
 * or, alone, its page (the premapped run's mprotect and a populate,
 * host_map.c); a read maps the ZERO_PAGE (one mmap); a COW break
 * copies the frame inside the memfd and maps the copy (copy_file_range
 * and one mmap: memory.c's copy_frame).  Userfaultfd
 * back end (uffd.c): a hole of a linear 2 MiB range is a SIGBUS, here
 * too, on the faulting thread, resolved by one UFFDIO_ZEROPAGE of the hole
 * and of the untouched holes of its window; every other fault is the
 * SIGSEGV back end's.  Neither signal serves the host kernel's own
 * accesses (a read(2) into a hole fails with EFAULT): the caller faults
 * such a buffer in first (get_user_pages), or, in libkslab-vm.so where
 * the host allows it, every hole is registered with a userfaultfd served
 * by a handler thread (uffd.c's story), which serves every fault on a
 * page that is not present through vm_fault_serve below — the same
 * fault_in — and, in its write-protect mode, every store into a present
 * read-only page of a writable vma; the signals keep the rest (a
 * PROT_NONE page, a read-only vma).  vmfault_bench measures both
 * mechanisms side by side.
 *
 * Locking: the handler takes mmap_sem and the frame spinlock, never held
 * by a thread while it touches a user window, and never calls malloc or
 * stdio.  Several threads may be in the handler at once.  The chained
 * handler (old_segv) is written under chain_lock and published with a
 * release store, read by the handler without a lock.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "vm/frames/os.h"
#include "vm/mm/mm.h"

#define VM_MAX_WINDOWS 4096

static struct {
    _Atomic uintptr_t base;
    struct mm_struct *_Atomic mm;
} windows[VM_MAX_WINDOWS];
static atomic_int nr_windows; /* high-water mark of used slots */
static pthread_mutex_t windows_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t chain_lock = PTHREAD_MUTEX_INITIALIZER;
/* The handler kslab chains to, for SIGSEGV and (with the userfaultfd
 * back end, uffd.c) SIGBUS: written into the slot not in use, under
 * chain_lock, then published by one release store, so the signal handler
 * (which takes no lock) copies a whole one.  A reader would see a torn
 * copy only if two updates completed while it copied 152 bytes.
 * installed is set once kslab's handler is in place. */
struct sigchain {
    struct sigaction slot[2];
    struct sigaction *_Atomic cur;
    atomic_int installed;
};
static struct sigchain segv_chain = {.cur = &segv_chain.slot[0]};
static struct sigchain bus_chain = {.cur = &bus_chain.slot[0]};

static struct sigchain *chain_of(int sig)
{
    return sig == SIGSEGV ? &segv_chain : sig == SIGBUS ? &bus_chain : NULL;
}

/*
 * Under ASan or TSan the sanitizer intercepts sigaction and signal itself
 * and must see every handler: there kslab does not wrap them.  kslab's own
 * calls go to libc's sigaction (never the wrapper below) through
 * vm_os_sigaction, which goes through the sanitizer in those builds.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KSLAB_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define KSLAB_SANITIZED 1
#endif
#endif
#ifdef KSLAB_SANITIZED
#define KSLAB_SIGNAL_CHAIN 0
#else
#define KSLAB_SIGNAL_CHAIN 1
#endif

/* A copy of the chained handler (async-signal-safe). */
static struct sigaction chained_handler(struct sigchain *c)
{
    struct sigaction a;
    memcpy(&a, atomic_load_explicit(&c->cur, memory_order_acquire), sizeof a);
    return a;
}

/* Replaces the chained handler; chain_lock held. */
static void set_chained_handler(struct sigchain *c, const struct sigaction *a)
{
    struct sigaction *cur = atomic_load_explicit(&c->cur, memory_order_relaxed);
    struct sigaction *next = cur == &c->slot[0] ? &c->slot[1] : &c->slot[0];
    memcpy(next, a, sizeof *a);
    atomic_store_explicit(&c->cur, next, memory_order_release);
}

int vm_window_register(struct mm_struct *mm)
{
    int slot = -1;
    pthread_mutex_lock(&windows_lock);
    for (int i = 0; i < VM_MAX_WINDOWS; i++)
        if (!atomic_load(&windows[i].base)) {
            slot = i;
            break;
        }
    if (slot >= 0) {
        atomic_store_explicit(&windows[slot].mm, mm, memory_order_relaxed);
        atomic_store_explicit(&windows[slot].base, (uintptr_t)mm->window,
                              memory_order_release);
        if (slot >= atomic_load(&nr_windows))
            atomic_store(&nr_windows, slot + 1);
    }
    pthread_mutex_unlock(&windows_lock);
    mm->window_slot = slot;
    return slot < 0 ? -ENOMEM : 0;
}

void vm_window_unregister(struct mm_struct *mm)
{
    if (mm->window_slot < 0)
        return;
    pthread_mutex_lock(&windows_lock);
    atomic_store_explicit(&windows[mm->window_slot].base, 0,
                          memory_order_release);
    atomic_store_explicit(&windows[mm->window_slot].mm, NULL,
                          memory_order_relaxed);
    pthread_mutex_unlock(&windows_lock);
    mm->window_slot = -1;
}

/* Host fork (lib/fork.c): chain_lock, then windows_lock; never nested
 * otherwise. */
void vm_window_fork_lock(void)
{
    pthread_mutex_lock(&chain_lock);
    pthread_mutex_lock(&windows_lock);
}

void vm_window_fork_unlock(int child)
{
    if (child) {
        pthread_mutex_init(&windows_lock, NULL);
        pthread_mutex_init(&chain_lock, NULL);
    } else {
        pthread_mutex_unlock(&windows_lock);
        pthread_mutex_unlock(&chain_lock);
    }
}

static struct mm_struct *window_lookup(uintptr_t a)
{
    int n = atomic_load_explicit(&nr_windows, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        uintptr_t b =
            atomic_load_explicit(&windows[i].base, memory_order_acquire);
        if (b && a - b < TASK_SIZE)
            return atomic_load_explicit(&windows[i].mm, memory_order_relaxed);
    }
    return NULL;
}

static int fault_is_write(void *ucontext)
{
#if defined(__x86_64__)
    ucontext_t *uc = ucontext;
    return (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#elif defined(__aarch64__)
    /* ESR_EL1 is in the esr_context record of __reserved; WnR is bit 6 */
    ucontext_t *uc = ucontext;
    struct _aarch64_ctx *c = (void *)uc->uc_mcontext.__reserved;
    while (c->magic) {
        if (c->magic == 0x45535201) /* ESR_MAGIC */
            return (((struct esr_context *)c)->esr >> 6) & 1;
        c = (void *)((char *)c + c->size);
    }
    return 0;
#else
    (void)ucontext;
    return -1; /* unknown: decided from the pte below */
#endif
}

/* fault_in's answer for an access the mapping cannot back (a page wholly
 * beyond the end of its file, an I/O error): a SIGBUS, not a SIGSEGV. */
/* The one line before a fault kills the process (async-signal-safe). */
static void say_fault(const char *what, unsigned long addr,
                      struct mm_struct *mm, const char *why)
{
    char line[160];
    int n = kslab_snprintf(line, sizeof line,
                           "kslab: %s at user address %lx of mm %p: %s\n", what,
                           addr, (void *)mm, why);
    if (write(2, line, (size_t)n) < 0)
        n = 0;
}

/* si_errno of the SIGBUS force_sigbus queues, which kslab's own SIGBUS
 * handler (userfaultfd back end) passes on to the program's; the host's
 * SIGBUS of a userfaultfd fault has si_errno 0. */
#define FORCED_SIGBUS 0x6b736c62

static const char why_sigbus[] = "bus error (beyond the end of the file)";
static const char why_novma[] = "no vma";
static const char why_readonly[] = "write to a read-only mapping";

static const char *fault_in(struct mm_struct *mm, unsigned long addr, int write)
{
    const char *why = NULL;
    pthread_mutex_lock(&mm->mmap_sem);
    struct vm_area_struct *vma = __find_vma(mm, addr);
    if (!vma) {
        why = why_novma;
        goto out;
    }
    /* below a stack: it grows (vm_expand_stack), unless a limit or
     * another mapping's guard gap stops it */
    if (vma->vm_start > addr && vm_expand_stack(mm, vma, addr) != 0) {
        why = (vma->vm_flags & VM_GROWSDOWN)
                  ? "stack cannot grow (RLIMIT_STACK, RLIMIT_AS or guard gap)"
                  : why_novma;
        goto out;
    }
    if (write < 0) {
        pte_t *pte = vm_pte_lookup(mm, addr);
        write = pte && pte_present(*pte) && !pte_write(*pte);
    }
    if (!vm_access_ok(vma, write)) {
        why = write ? why_readonly : "no access";
        goto out;
    }
    int r = __handle_mm_fault(mm, vma, addr, write);
    if (r == 0)
        why = why_sigbus;
    else if (r < 0)
        why = "out of memory";
out:
    pthread_mutex_unlock(&mm->mmap_sem);
    return why;
}

/*
 * A fault that the userfaultfd handler thread read (uffd.c): the same
 * fault_in as the signal handlers', for the access at host address a.  A
 * write the vma does not allow is served as a read (the page is mapped
 * read-only, so the retried write faults as a protection fault: a
 * SIGSEGV to the program, EFAULT to the host kernel).  When not even that
 * can be served (no vma, no access, out of memory — a write's included:
 * served as a read, the page would be mapped write-protected again and
 * the write come straight back —, beyond a file's end)
 * the page is made inaccessible on the host — the retried access then
 * fails as it would have on a PROT_NONE hole: the SIGSEGV handler reports
 * it to the program with its own si_addr, the host kernel's access gets
 * EFAULT — unless the mm changed meanwhile so that the access is allowed
 * (the retry faults again and is served).  Returns 1 when resolved, 0
 * when the page was made to fail, -1 when a is in no window.
 */
int vm_fault_serve(uintptr_t a, int write)
{
    struct mm_struct *mm = window_lookup(a);
    if (!mm)
        return -1;
    unsigned long addr = (a - (uintptr_t)mm->window) & PAGE_MASK;
    const char *why = fault_in(mm, addr, write);
    if (why == why_readonly)
        why = fault_in(mm, addr, 0);
    if (!why)
        return 1;
    pthread_mutex_lock(&mm->mmap_sem);
    struct vm_area_struct *vma = __find_vma(mm, addr);
    /* a vma made there since fault_in looked: the retry is served */
    if (why != why_novma || !vma || vma->vm_start > addr ||
        !vm_access_ok(vma, 0))
        vm_uffd_poison(mm, addr);
    pthread_mutex_unlock(&mm->mmap_sem);
    return 0;
}

/*
 * A fault that is not kslab's goes to the handler installed before ours,
 * as the kernel would have delivered it: its sa_mask (and the signal
 * itself unless SA_NODEFER) blocked while it runs — our own handler is
 * SA_NODEFER, so a handler that longjmps out leaves the mask as the
 * program expects — and with SA_RESETHAND the disposition goes back to
 * the default first, so the repeated fault kills.  An ignored SIGSEGV
 * that was sent (kill, raise) is dropped; an ignored real fault kills,
 * as the kernel's force_sig_fault does.  The stack is the one ours runs
 * on: ours is SA_ONSTACK, so a thread with an alternate stack (a stack
 * overflow handler) gets it.
 */
static void chain(int sig, siginfo_t *si, void *uc, const char *why,
                  unsigned long addr, struct mm_struct *mm)
{
    struct sigchain *c = chain_of(sig);
    struct sigaction old = chained_handler(c);
    int handler = (old.sa_flags & SA_SIGINFO)
                      ? old.sa_sigaction != NULL
                      : old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN;
    if (handler) {
        if (old.sa_flags & SA_RESETHAND) {
            struct sigaction dfl;
            memset(&dfl, 0, sizeof dfl);
            dfl.sa_handler = SIG_DFL;
            set_chained_handler(c, &dfl);
        }
        sigset_t mask = old.sa_mask, saved;
        if (!(old.sa_flags & SA_NODEFER))
            sigaddset(&mask, sig);
        vm_os_sigmask(SIG_BLOCK, &mask, &saved);
        if (old.sa_flags & SA_SIGINFO)
            old.sa_sigaction(sig, si, uc);
        else
            old.sa_handler(sig);
        vm_os_sigmask(SIG_SETMASK, &saved, NULL);
        return;
    }
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN &&
        si->si_code <= 0)
        return; /* sent and ignored */
    if (why)
        say_fault("segmentation fault", addr, mm, why);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    atomic_store(&c->installed, 0);
    vm_os_sigaction(sig, &dfl, NULL);
    if (si->si_code <= 0) /* sent, not a fault: it will not repeat */
        raise(sig);
}

/*
 * force_sig_fault(SIGBUS, BUS_ADRERR, address) as Linux does it for a
 * mapping that cannot back a page: the host raised SIGSEGV, so kslab
 * queues a SIGBUS to this thread with the fault's si_code and si_addr
 * (rt_tgsigqueueinfo accepts a positive si_code for the caller itself).
 * The kernel delivers it once this handler returns, before the faulting
 * instruction runs again — to the program's SIGBUS handler with the
 * faulting context, or, with none, the process dies of SIGBUS.  As
 * force_sig does, a blocked or ignored SIGBUS is unblocked (in the mask
 * sigreturn restores) and reset to the default first.  A handler that
 * returns sees the access fault again, as on Linux.
 */
static void force_sigbus(siginfo_t *fault, void *ucontext, unsigned long addr,
                         struct mm_struct *mm)
{
    ucontext_t *uc = ucontext;
    struct sigaction cur;
    int chained = atomic_load(&bus_chain.installed);
    if (chained)
        cur = chained_handler(&bus_chain);
    else
        vm_os_sigaction(SIGBUS, NULL, &cur);
    int dfl = !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL;
    int ign = !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_IGN;
    if (ign || sigismember(&uc->uc_sigmask, SIGBUS) == 1) {
        struct sigaction def;
        memset(&def, 0, sizeof def);
        def.sa_handler = SIG_DFL;
        if (chained)
            set_chained_handler(&bus_chain, &def);
        else
            vm_os_sigaction(SIGBUS, &def, NULL);
        sigdelset(&uc->uc_sigmask, SIGBUS);
        dfl = 1;
    }
    if (dfl)
        say_fault("bus error", addr, mm, why_sigbus);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = SIGBUS;
    si.si_code = BUS_ADRERR;
    si.si_errno = FORCED_SIGBUS;
    si.si_addr = fault->si_addr;
    if (vm_os_queue_signal_self(&si) != 0)
        raise(SIGBUS); /* no queue: the signal without its details */
}

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    int saved_errno = errno;
    const char *why = NULL;
    unsigned long addr = 0;
    struct mm_struct *mm = NULL;

    if (si->si_code > 0) {
        uintptr_t a = (uintptr_t)si->si_addr;
        mm = window_lookup(a);
        if (mm) {
            addr = a - (uintptr_t)mm->window;
            why = fault_in(mm, addr, fault_is_write(uc));
            if (why == why_sigbus)
                force_sigbus(si, uc, addr, mm);
            if (!why || why == why_sigbus) {
                errno = saved_errno;
                return;
            }
        }
    }
    chain(sig, si, uc, why, addr, mm);
    errno = saved_errno;
}

/*
 * The userfaultfd back end's SIGBUS (uffd.c): a hole of a linear range of
 * a window was touched.  It is resolved as the SIGSEGV of the other back
 * end is; an access the mm does not allow (out of memory) is a SIGSEGV to
 * the program's handler, or kills.  Every other SIGBUS — kslab's own
 * (force_sigbus), one sent, one outside the windows — goes to the
 * program's SIGBUS handler as the kernel would have delivered it.
 */
static void bus_handler(int sig, siginfo_t *si, void *uc)
{
    int saved_errno = errno;
    if (si->si_code == BUS_ADRERR && si->si_errno != FORCED_SIGBUS) {
        uintptr_t a = (uintptr_t)si->si_addr;
        struct mm_struct *mm = window_lookup(a);
        if (mm) {
            unsigned long addr = a - (uintptr_t)mm->window;
            const char *why = fault_in(mm, addr, fault_is_write(uc));
            if (why == why_sigbus)
                force_sigbus(si, uc, addr, mm);
            if (why && why != why_sigbus) {
                siginfo_t segv = *si;
                segv.si_signo = SIGSEGV;
                segv.si_code = SEGV_ACCERR;
                chain(SIGSEGV, &segv, uc, why, addr, mm);
                if (!atomic_load(&segv_chain.installed))
                    raise(SIGSEGV); /* the access would come back a SIGBUS */
            }
            errno = saved_errno;
            return;
        }
    }
    chain(sig, si, uc, NULL, 0, NULL);
    if (!atomic_load(&bus_chain.installed) && si->si_errno == FORCED_SIGBUS)
        raise(SIGBUS); /* the default action, now */
    errno = saved_errno;
}

static int install(struct sigchain *c, int sig,
                   void (*fn)(int, siginfo_t *, void *))
{
    struct sigaction cur, sa;
    int r = 0;
    pthread_mutex_lock(&chain_lock);
    vm_os_sigaction(sig, NULL, &cur);
    if (!((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == fn)) {
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = fn;
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        set_chained_handler(c, &cur);
        r = vm_os_sigaction(sig, &sa, NULL);
    }
    if (!r)
        atomic_store(&c->installed, 1);
    pthread_mutex_unlock(&chain_lock);
    return r;
}

/* SIGBUS for the userfaultfd back end, chained as SIGSEGV is. */
int vm_fault_bus_init(void)
{
    return install(&bus_chain, SIGBUS, bus_handler);
}

/*
 * Installs the handler unless it is already the current one (a test
 * harness may have put its own in the meantime: that one becomes the
 * handler we chain to).  Called by every mm_alloc.
 */
int vm_fault_init(void)
{
    return install(&segv_chain, SIGSEGV, segv_handler);
}

/* ---- keeping the handler first ---- */

#if KSLAB_SIGNAL_CHAIN

/**
 * sigaction - libc's sigaction(2), except that once kslab's SIGSEGV
 * handler is installed a SIGSEGV disposition is the one kslab chains to:
 * act becomes the program's handler for the faults that are not kslab's,
 * and oact reports the program's previous one, never kslab's.  The same
 * for SIGBUS once the userfaultfd back end has installed its handler.
 */
/* Leaves SIGSEGV and SIGBUS out of a set of signals to block. */
static void keep_fault_signals(sigset_t *set)
{
    sigdelset(set, SIGSEGV);
    sigdelset(set, SIGBUS);
}

KSLAB_API int sigaction(int sig, const struct sigaction *act,
                        struct sigaction *oact)
{
    struct sigaction kept;
    if (act && (sigismember(&act->sa_mask, SIGSEGV) == 1 ||
                sigismember(&act->sa_mask, SIGBUS) == 1)) {
        kept = *act;
        keep_fault_signals(&kept.sa_mask);
        act = &kept;
    }
    struct sigchain *c = chain_of(sig);
    /* libc's contract: -1 with errno set (vm_os_sigaction leaves it) */
    if (!c || !atomic_load(&c->installed))
        return vm_os_sigaction(sig, act, oact) ? -1 : 0;
    pthread_mutex_lock(&chain_lock);
    if (!atomic_load(&c->installed)) { /* reset to the default meanwhile */
        pthread_mutex_unlock(&chain_lock);
        return vm_os_sigaction(sig, act, oact) ? -1 : 0;
    }
    struct sigaction prev = chained_handler(c);
    if (act) {
        struct sigaction a = *act;
        sigdelset(&a.sa_mask, SIGKILL); /* as the kernel drops them */
        sigdelset(&a.sa_mask, SIGSTOP);
        set_chained_handler(c, &a);
    }
    pthread_mutex_unlock(&chain_lock);
    if (oact)
        *oact = prev;
    return 0;
}

/**
 * signal - BSD signal() (glibc's): SA_RESTART, the signal itself blocked
 * while the handler runs; through sigaction() above, so a SIGSEGV handler
 * installed with it is chained behind kslab's.
 */
KSLAB_API __sighandler_t signal(int sig, __sighandler_t handler)
{
    struct sigaction act, old;
    if (handler == SIG_ERR || sig <= 0 || sig >= NSIG) {
        errno = EINVAL;
        return SIG_ERR;
    }
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    sigaddset(&act.sa_mask, sig);
    act.sa_flags = SA_RESTART;
    if (sigaction(sig, &act, &old) < 0)
        return SIG_ERR;
    /* sa_handler and sa_sigaction share their storage (a union) */
    return old.sa_handler;
}

KSLAB_API __sighandler_t bsd_signal(int sig, __sighandler_t handler)
{
    return signal(sig, handler);
}

/* ---- keeping SIGSEGV and SIGBUS deliverable ---- */

static int sigmask_kept(int how, const sigset_t *set, sigset_t *old)
{
    sigset_t s;
    if (set && how != SIG_UNBLOCK) {
        s = *set;
        keep_fault_signals(&s);
        set = &s;
    }
    return vm_os_sigmask(how, set, old);
}

/**
 * pthread_sigmask - glibc's, except that SIGSEGV and SIGBUS are never
 * blocked (a fault on emulated memory must reach kslab's handler in every
 * thread); the rest of set is applied as asked, and old is the mask in
 * force before.  Returns 0 or an errno value (EINVAL for a bad how).
 */
KSLAB_API int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    return sigmask_kept(how, set, old);
}

/** sigprocmask - as pthread_sigmask(), with -1 and errno on error. */
KSLAB_API int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    int err = sigmask_kept(how, set, old);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* BSD's mask words: signal n is bit n - 1 (sigmask(n)). */
static void word_to_set(int mask, sigset_t *set)
{
    sigemptyset(set);
    for (int sig = 1; sig < 32; sig++)
        if (mask & (1 << (sig - 1)))
            sigaddset(set, sig);
}

static int set_to_word(const sigset_t *set)
{
    int mask = 0;
    for (int sig = 1; sig < 32; sig++)
        if (sigismember(set, sig) == 1)
            mask |= 1 << (sig - 1);
    return mask;
}

/** sigblock - the BSD call (glibc's): adds mask, returns the old mask. */
KSLAB_API int sigblock(int mask)
{
    sigset_t set, old;
    word_to_set(mask, &set);
    if (sigmask_kept(SIG_BLOCK, &set, &old))
        return -1;
    return set_to_word(&old);
}

/** sigsetmask - the BSD call (glibc's): sets mask, returns the old one. */
KSLAB_API int sigsetmask(int mask)
{
    sigset_t set, old;
    word_to_set(mask, &set);
    if (sigmask_kept(SIG_SETMASK, &set, &old))
        return -1;
    return set_to_word(&old);
}

/** sighold - System V's: blocks sig (SIGSEGV and SIGBUS: nothing). */
KSLAB_API int sighold(int sig)
{
    sigset_t set;
    sigemptyset(&set);
    if (sigaddset(&set, sig) < 0)
        return -1;
    return sigprocmask(SIG_BLOCK, &set, NULL);
}
#endif /* KSLAB_SIGNAL_CHAIN */
