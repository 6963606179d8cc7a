/*
 * tests/vm/test_segv_chain.c — a SIGSEGV that is not kslab's reaches the
 * program's own handler exactly as it would without kslab: SA_RESETHAND
 * runs it once and then the default kills, SA_NODEFER with longjmp works
 * every time, SA_ONSTACK catches a stack overflow on the alternate stack,
 * and an ignored SIGSEGV that was sent is ignored; a handler installed
 * after kslab's (sigaction or signal) is chained behind it and reported
 * back as the program's.  Each case runs in a
 * forked child whose handler was installed before kslab's; an emulated mm
 * is in use beside it.
 */
#include <setjmp.h>
#include <signal.h>
#include <sys/resource.h>

#include "vmtest.h"

static volatile sig_atomic_t calls;
static jmp_buf jb;
static char *guard; /* one PROT_NONE page of ordinary memory */

/* The program's handler first, then kslab's in front of it (as after an
 * mm_alloc), with an mm whose pages fault as usual. */
static struct mm_struct *setup(void (*fn)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    vm_fault_init();
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    if (IS_ERR_VALUE(a))
        _exit(91);
    U64(mm, a) = 1; /* an emulated fault, handled by kslab */
    if (U64(mm, a) != 1)
        _exit(90);
    guard = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    alarm(10); /* a handler called forever must not hang the test */
    return mm;
}

static int run(void (*body)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        body();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    return st;
}

static void count_handler(int sig)
{
    (void)sig;
    if (++calls > 1)
        _exit(3); /* called again: SA_RESETHAND was ignored */
}

static void resethand_body(void)
{
    setup(count_handler, SA_RESETHAND);
    *(volatile char *)guard = 1; /* handler once, then the default */
    _exit(4);
}

static void test_resethand_handler_runs_once_then_default(void **state)
{
    (void)state;
    int st = run(resethand_body);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSEGV);
}

static void jump_handler(int sig)
{
    (void)sig;
    calls++;
    longjmp(jb, 1); /* not siglongjmp: the mask is not restored */
}

static void nodefer_body(void)
{
    setup(jump_handler, SA_NODEFER);
    for (int i = 0; i < 3; i++)
        if (!setjmp(jb))
            *(volatile char *)guard = 1;
    _exit(calls == 3 ? 0 : 5);
}

static void test_nodefer_longjmp_handler_works_every_time(void **state)
{
    (void)state;
#if defined(__SANITIZE_THREAD__)
    /* TSan delivers signals through its own wrapper, which keeps SIGSEGV
     * blocked after a longjmp out of a handler whatever the flags */
    ktest_skip("TSan keeps SIGSEGV blocked after a longjmp out of a handler");
#endif
    int st = run(nodefer_body);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void overflow_handler(int sig)
{
    (void)sig;
    _exit(42);
}

static volatile int depth_limit = 1 << 30; /* never reached */

static int recurse(volatile char *p, int depth)
{
    volatile char buf[4096];
    buf[0] = *p;
    if (depth >= depth_limit)
        return buf[0];
    return recurse(buf, depth + 1) + buf[0];
}

static void onstack_body(void)
{
    static char alt[1 << 16];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct rlimit rl = {1 << 20, 1 << 20}; /* a quick overflow */
    setrlimit(RLIMIT_STACK, &rl);
    setup(overflow_handler, SA_ONSTACK);
    char c = 0;
    recurse(&c, 0);
}

static void test_onstack_handler_catches_stack_overflow(void **state)
{
    (void)state;
    int st = run(onstack_body);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 42);
}

static void ignored_body(void)
{
    setup(SIG_IGN, 0);
    kill(getpid(), SIGSEGV);
    raise(SIGSEGV);
    _exit(7);
}

static void test_ignored_sent_sigsegv_is_ignored(void **state)
{
    (void)state;
    int st = run(ignored_body);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 7);
}

/* A handler installed after kslab's (a crash reporter set up after the
 * first mm): emulated faults stay kslab's, the program's handler gets its
 * own faults, and sigaction() reports the program's handler back. */
static volatile sig_atomic_t late_calls;
static sigjmp_buf late_jb;

static void late_handler(int sig)
{
    (void)sig;
    late_calls++;
    siglongjmp(late_jb, 1);
}

static void late_body(int use_signal)
{
    vm_fault_init();
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    if (IS_ERR_VALUE(a))
        _exit(91);
    if (use_signal) {
        if (signal(SIGSEGV, late_handler) == SIG_ERR)
            _exit(92);
    } else {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = late_handler;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSEGV, &sa, NULL) != 0)
            _exit(92);
    }
    struct sigaction cur;
    sigaction(SIGSEGV, NULL, &cur);
    if (cur.sa_handler != late_handler)
        _exit(93); /* kslab's handler reported, not the program's */
    for (int i = 0; i < 4; i++) /* demand faults: kslab's */
        U64(mm, a + i * PAGE_SIZE) = (uint64_t)i + 1;
    for (int i = 0; i < 4; i++)
        if (U64(mm, a + i * PAGE_SIZE) != (uint64_t)i + 1)
            _exit(94);
    if (late_calls)
        _exit(95); /* the program's handler took an emulated fault */
    guard = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    alarm(10);
    if (!sigsetjmp(late_jb, 1))
        *(volatile char *)guard = 1; /* the program's own fault */
    if (late_calls != 1)
        _exit(96);
    _exit(0);
}

static void late_sigaction_body(void)
{
    late_body(0);
}

static void late_signal_body(void)
{
    late_body(1);
}

static void test_handler_installed_later_is_chained(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* the sanitizer intercepts sigaction and signal itself; kslab does not
     * wrap them there */
    ktest_skip("the sanitizer wraps sigaction and signal, not kslab");
#endif
    int st = run(late_sigaction_body);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    st = run(late_signal_body);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resethand_handler_runs_once_then_default),
        cmocka_unit_test(test_onstack_handler_catches_stack_overflow),
        cmocka_unit_test(test_ignored_sent_sigsegv_is_ignored),
    };
    const struct CMUnitTest alone[] = {
        ktest_alone(test_nodefer_longjmp_handler_works_every_time),
        ktest_alone(test_handler_installed_later_is_chained),
    };
    return ktest_main(argc, argv, tests, alone, NULL, NULL);
}
