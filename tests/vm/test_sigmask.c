/*
 * tests/vm/test_sigmask.c — a thread that blocks every signal still has
 * its faults on emulated memory served (Linux kills a process whose
 * synchronous SIGSEGV or SIGBUS is blocked): pthread_sigmask, sigprocmask,
 * the BSD sigblock/sigsetmask and a handler's sa_mask never block SIGSEGV
 * or SIGBUS, everything else is blocked as asked, and the mask read back
 * is the one in force.  Each case runs in a forked child with its own mm
 * (4 MiB of private anonymous memory: linear ranges with the userfaultfd
 * back end, per-page mappings with the SIGSEGV one), written and read
 * back page by page.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "vmtest.h"

#define LEN (4UL << 20)

static struct mm_struct *mm;
static unsigned long base;

static void make_mm(void)
{
    mm = mm_alloc();
    base = mm ? anon(mm, 0, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE) : 0;
    if (!mm || IS_ERR_VALUE(base))
        _exit(90);
}

/* Writes every page, reads it back: 0, or the exit code of a failure. */
static int touch_all(unsigned long tag)
{
    for (unsigned long a = base; a < base + LEN; a += PAGE_SIZE)
        U64(mm, a + 8) = a ^ tag;
    for (unsigned long a = base; a < base + LEN; a += PAGE_SIZE)
        if (U64(mm, a + 8) != (a ^ tag))
            return 80;
    return 0;
}

/* The mask in force: SIGINT blocked as asked, SIGSEGV and SIGBUS not. */
static int mask_ok(void)
{
    sigset_t cur;
    if (pthread_sigmask(SIG_SETMASK, NULL, &cur) != 0)
        return 70;
    if (sigismember(&cur, SIGINT) != 1 || sigismember(&cur, SIGUSR2) != 1)
        return 71;
    if (sigismember(&cur, SIGSEGV) || sigismember(&cur, SIGBUS))
        return 72;
    return 0;
}

static void *blocked_worker(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    if (pthread_sigmask(SIG_BLOCK, &all, NULL) != 0)
        return (void *)60L;
    int r = touch_all(0x5eed);
    return (void *)(long)(r ? r : mask_ok());
}

static int join(pthread_t t)
{
    void *r;
    if (pthread_join(t, &r) != 0)
        return 61;
    return (int)(long)r;
}

/* The mm first, then a thread that blocks every signal. */
static int case_thread_after_mm(void)
{
    make_mm();
    pthread_t t;
    if (pthread_create(&t, NULL, blocked_worker, NULL) != 0)
        return 62;
    return join(t);
}

/* A pool made before any mm: its thread blocks every signal, then the
 * mm is made and the thread touches it. */
static pthread_barrier_t bar;

static void *early_worker(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    pthread_barrier_wait(&bar); /* blocked */
    pthread_barrier_wait(&bar); /* the mm is there */
    int r = touch_all(0xfeed);
    return (void *)(long)(r ? r : mask_ok());
}

static int case_thread_before_mm(void)
{
    pthread_t t;
    pthread_barrier_init(&bar, NULL, 2);
    if (pthread_create(&t, NULL, early_worker, NULL) != 0)
        return 62;
    pthread_barrier_wait(&bar);
    make_mm();
    pthread_barrier_wait(&bar);
    return join(t);
}

/* A thread created with every signal blocked inherits the mask. */
static int case_inherited(void)
{
    make_mm();
    sigset_t all, old;
    sigfillset(&all);
    if (sigprocmask(SIG_SETMASK, &all, &old) != 0)
        return 63;
    pthread_t t;
    if (pthread_create(&t, NULL, blocked_worker, NULL) != 0)
        return 62;
    int r = join(t);
    if (!r)
        r = touch_all(0xabc);
    if (!r)
        r = mask_ok();
    sigprocmask(SIG_SETMASK, &old, NULL);
    return r;
}

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#define BIT(sig) (1 << ((sig)-1)) /* BSD's sigmask() */
/* The BSD calls: everything but SIGSEGV and SIGBUS, read back. */
static int case_bsd(void)
{
    make_mm();
    int want = ~0;
    sigblock(want);
    if (sighold(SIGSEGV) != 0)
        return 65;
    int r = touch_all(0x77);
    if (r)
        return r;
    int got = sigsetmask(want);
    if (!(got & BIT(SIGINT)) || (got & BIT(SIGSEGV)) || (got & BIT(SIGBUS)))
        return 64;
    return mask_ok();
}

/* A handler whose sa_mask is every signal touches emulated memory. */
static volatile int handler_result = -1;

static void usr1(int sig)
{
    (void)sig;
    handler_result = touch_all(0x1234);
}

static int case_handler_mask(void)
{
    make_mm();
    struct sigaction sa, back;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = usr1;
    sigfillset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        return 66;
    raise(SIGUSR1);
    if (handler_result)
        return handler_result;
    if (sigaction(SIGUSR1, NULL, &back) != 0 ||
        sigismember(&back.sa_mask, SIGINT) != 1 ||
        sigismember(&back.sa_mask, SIGSEGV) ||
        sigismember(&back.sa_mask, SIGBUS))
        return 67;
    return 0;
}

static int run(int (*body)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        child_default_segv();
        alarm(60);
        _exit(body());
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return st;
}

#define EXPECT_OK(body)                                                        \
    do {                                                                       \
        int _st = run(body);                                                   \
        if (!WIFEXITED(_st) || WEXITSTATUS(_st) != 0)                          \
            fail_msg("%s: child status %#x (signal %d, exit %d)", #body, _st,  \
                     WIFSIGNALED(_st) ? WTERMSIG(_st) : 0,                     \
                     WIFEXITED(_st) ? WEXITSTATUS(_st) : -1);                  \
    } while (0)

static void test_blocked_thread_after_mm(void **s)
{
    (void)s;
    EXPECT_OK(case_thread_after_mm);
}

static void test_blocked_thread_before_mm(void **s)
{
    (void)s;
    EXPECT_OK(case_thread_before_mm);
}

static void test_blocked_mask_inherited(void **s)
{
    (void)s;
    EXPECT_OK(case_inherited);
}

static void test_bsd_calls(void **s)
{
    (void)s;
    EXPECT_OK(case_bsd);
}

static void test_handler_sa_mask(void **s)
{
    (void)s;
    EXPECT_OK(case_handler_mask);
}

int main(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* the sanitizers own sigaction and the mask calls: kslab does not
     * wrap them there */
    return KTEST_SKIP;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocked_thread_after_mm),
        cmocka_unit_test(test_blocked_thread_before_mm),
        cmocka_unit_test(test_blocked_mask_inherited),
        cmocka_unit_test(test_bsd_calls),
        cmocka_unit_test(test_handler_sa_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
