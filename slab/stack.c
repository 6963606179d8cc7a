/*
 * slab/stack.c — the stacks of KSLAB_DEBUG: which unwinder takes them,
 * taking one, and writing them (and the other lines of a report) out.
 *
 * The unwinder: libunwind's unw_backtrace() when it is there (Debian's
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
 * Report lines are written with write(2), never stdio or malloc, unless
 * the caller gives a FILE (kslab_leak_check, kslab_log_print).  No lock:
 * the choice is a once-only set-up (lib/init.h), the rest is per thread.
 */
#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "lib/compiler.h"
#include "lib/init.h"
#include "lib/report.h"
#include "slab/debug_internal.h"

static uintptr_t self_lo, self_hi; /* kslab's code, when a shared object */
static __thread int in_unwinder __attribute__((tls_model("initial-exec")));
static int stacks_wanted; /* start-up asked for stacks */

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
 * start-up has already asked for stacks (otherwise slab_stack_init will,
 * or the first stack after it). */
__attribute__((constructor)) static void debug_ctor(void)
{
    __atomic_store_n(&debug_ctor_ran, 1, __ATOMIC_RELEASE);
    if (__atomic_load_n(&stacks_wanted, __ATOMIC_ACQUIRE))
        kslab_once(&unwinder_once, unwinder_choose);
}

unsigned int slab_stack_capture(void **out)
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

void slab_stack_init(void)
{
    find_self_text();
    __atomic_store_n(&stacks_wanted, 1, __ATOMIC_RELEASE);
    if (__atomic_load_n(&debug_ctor_ran, __ATOMIC_ACQUIRE))
        kslab_once(&unwinder_once, unwinder_choose);
}

/* ---- writing a report with write(2) ---- */

void slab_debug_out(int fd, FILE *f, const char *fmt, ...)
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
    if (fd == SLAB_DEBUG_FATAL_FD) {
        kslab_report_write(line, len, 1);
        return;
    }
    if (fd == SLAB_DEBUG_LEAKS_LOG_FD)
        fd = slab_leaks_log_fd();
    kslab_write_all(fd, line, len);
}

/* obj+0xoff is what `addr2line -f -e obj 0xoff' takes. */
void slab_debug_print_stack(int fd, FILE *f, void *const *stack, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++) {
        Dl_info di;
        uintptr_t pc = (uintptr_t)stack[i];
        if (!dladdr(stack[i], &di) || !di.dli_fname) {
            slab_debug_out(fd, f, "    #%u 0x%lx in ??\n", i,
                           (unsigned long)pc);
            continue;
        }
        unsigned long objoff = pc - (uintptr_t)di.dli_fbase;
        if (di.dli_sname)
            slab_debug_out(fd, f, "    #%u 0x%lx in %s %s+0x%lx\n", i,
                           (unsigned long)pc, di.dli_sname, di.dli_fname,
                           objoff);
        else
            slab_debug_out(fd, f, "    #%u 0x%lx in ?? %s+0x%lx\n", i,
                           (unsigned long)pc, di.dli_fname, objoff);
    }
    if (!n)
        slab_debug_out(fd, f, "    (no stack)\n");
}
