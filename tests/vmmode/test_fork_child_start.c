/*
 * tests/vmmode/test_fork_child_start.c — threads start, in the process
 * and in a host fork's child, while the mm's pages are swapped out.
 *
 * glibc's start of every thread reads the global locale's LC_CTYPE data
 * (__ctype_init) with every signal blocked, SIGSEGV and SIGBUS too: that
 * data, which setlocale() malloc'd, must be host memory
 * (vmmode/libcobj.c), or a thread started while its page is not present
 * kills the process (the SIGSEGV back end; the handler thread a host
 * fork's child starts anew, on either back end) or waits forever.  So
 * must the FILEs that glibc's fork resets in the child of a process with
 * threads before any fork handler runs, and the NSS state it writes
 * there (the third test: a child that wrote it on a page the parent had
 * swapped out hung).  The first test checks where
 * setlocale(), newlocale() and the calls that make a FILE put them; the
 * second loads C.UTF-8, opens FILEs, starts a thread, pushes the mm's
 * pages out (8 MiB of KSLAB_VM_MEM, the
 * CMake settings, and three times as much written) and forks a bounded
 * number of times: each child starts threads, has the host kernel write
 * into a block never touched — served by the child's own handler thread
 * when the parent has one (vm/mm/fork.c, vm_mm_fork_child_serve) — and
 * exits, or execs a program.  A child that dies or hangs fails the test;
 * the parent gives each one two minutes, a bound for a hang, not a
 * speed.  Both back ends (CMake); with the SIGSEGV one there is no
 * handler thread.
 */
#include <locale.h>
#include <pwd.h>
#include <time.h>

#include "ktest.h"
#include "vmmtest.h"

#define FORKS 12
#define HANG_MS 120000

/* The global locale's LC_CTYPE data (struct __locale_data, malloc'd by
 * setlocale): its address, as a copy of the global locale shares it. */
static const void *ctype_data(void)
{
    locale_t l = duplocale(LC_GLOBAL_LOCALE);
    assert_non_null(l);
    const void *d = l->__locales[LC_CTYPE];
    freelocale(l);
    return d;
}

/* Writes 24 MiB (three times KSLAB_VM_MEM) twice: most of the mm's
 * other pages are swapped out (or armed by the aging scan) then. */
static void push_out(void)
{
    enum { LEN = 24 << 20 };
    unsigned char *buf = malloc(LEN);
    assert_non_null(buf);
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < LEN; i += 4096)
            buf[i] = (unsigned char)(round + i);
    free(buf);
}

/* Waits for the end of the pipe *arg. */
static void *idle_fn(void *arg)
{
    char c;
    while (read(*(int *)arg, &c, 1) > 0)
        ;
    return NULL;
}

static void *thread_fn(void *arg)
{
    unsigned char *q = malloc(200);
    if (!q)
        return NULL;
    fill(q, 200, (unsigned)(uintptr_t)arg);
    int ok = check(q, 200, (unsigned)(uintptr_t)arg);
    free(q);
    return ok ? arg : NULL;
}

/* The child's work: threads, and a read(2) into a block never touched —
 * with the parent's handler thread, the child's own must serve it. */
static int child_body(int parent_thread)
{
    for (uintptr_t t = 1; t <= 3; t++) {
        pthread_t th;
        void *r = NULL;
        if (pthread_create(&th, NULL, thread_fn, (void *)t) != 0 ||
            pthread_join(th, &r) != 0 || r != (void *)t)
            return 2;
    }
    struct vmstat s;
    read_stats(&s);
    if (s.thread != parent_thread)
        return 3;
    if (!parent_thread)
        return 0;
    int pfd[2];
    unsigned char *buf = malloc(256 << 10);
    if (!buf || pipe(pfd) != 0)
        return 4;
    unsigned char src[4096];
    fill(src, sizeof src, 7);
    if (write(pfd[1], src, sizeof src) != (ssize_t)sizeof src)
        return 5;
    /* by system call: no wrapper of the library pins the buffer */
    long n = syscall(SYS_read, pfd[0], buf + (128 << 10), sizeof src);
    if (n != (long)sizeof src || !check(buf + (128 << 10), sizeof src, 7))
        return 6;
    return 0;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* The child's exit status, or fails when it hangs past HANG_MS. */
static int wait_bounded(pid_t pid)
{
    int st = 0;
    long t0 = now_ms();
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        assert_true(r == 0 || r == pid);
        if (r == pid)
            return st;
        if (now_ms() - t0 > HANG_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fail_msg("child %d hung", (int)pid);
        }
        usleep(10000);
    }
}

/* setlocale() and newlocale() load locale data into host memory; the
 * calls that make a FILE make it there too. */
static void test_libc_objects_are_host_memory(void **state)
{
    (void)state;
    if (!setlocale(LC_ALL, "C.UTF-8"))
        ktest_skip("no C.UTF-8 locale here");
    void *small = malloc(100);
    assert_true(in_mm(small)); /* small blocks are the mm's (the default) */
    free(small);
    assert_false(in_mm(ctype_data()));
    locale_t l = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
    assert_non_null(l);
    assert_false(in_mm(l->__locales[LC_CTYPE]));
    assert_false(in_mm(l));
    freelocale(l);
    setlocale(LC_ALL, "C");
    char *mem = NULL;
    size_t len = 0;
    FILE *f[] = {fopen("/dev/null", "r"), fdopen(dup(0), "r"),
                 open_memstream(&mem, &len), tmpfile(),
                 fmemopen(NULL, 64, "w+")};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        assert_non_null(f[i]);
        assert_false(in_mm(f[i]));
        fclose(f[i]);
    }
    free(mem);
}

static void test_fork_children_start_threads_and_exec(void **state)
{
    (void)state;
    if (!setlocale(LC_ALL, "C.UTF-8"))
        ktest_skip("no C.UTF-8 locale here");
    struct vmstat s0, s1;
    read_stats(&s0);
    /* a thread, so that glibc's fork resets every FILE's lock in the
     * child before any handler runs, and FILEs open across the forks */
    int idle[2];
    assert_int_equal(pipe(idle), 0);
    pthread_t idler;
    assert_int_equal(pthread_create(&idler, NULL, idle_fn, &idle[0]), 0);
    FILE *files[16];
    for (int i = 0; i < 16; i++)
        assert_non_null(files[i] = fopen("/dev/null", "r"));
    /* small blocks written before the forks, swapped out by push_out */
    enum { NSMALL = 2000 };
    static unsigned char *keep[NSMALL];
    for (int i = 0; i < NSMALL; i++) {
        keep[i] = malloc(700);
        assert_non_null(keep[i]);
        fill(keep[i], 700, (unsigned)i);
    }
    for (int i = 0; i < FORKS; i++) {
        push_out();
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (i % 3 == 2) {
                execl("/bin/sh", "sh", "-c", "exit 0", (char *)NULL);
                _exit(127);
            }
            int r = child_body(s0.thread);
            for (int j = 0; !r && j < NSMALL; j++)
                if (!check(keep[j], 700, (unsigned)j))
                    r = 7;
            _exit(r);
        }
        int st = wait_bounded(pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("child %d: status %#x", i, st);
    }
    read_stats(&s1);
    assert_true(s1.pswpout > s0.pswpout);
    for (int i = 0; i < 16; i++)
        fclose(files[i]);
    close(idle[1]);
    pthread_join(idler, NULL);
    close(idle[0]);
    for (int i = 0; i < NSMALL; i++) {
        assert_true(check(keep[i], 700, (unsigned)i));
        free(keep[i]);
    }
    setlocale(LC_ALL, "C");
}

/* glibc's fork writes the NSS state in the child of a process with
 * threads before any handler runs, through the parent's mapping of the
 * window: that state (malloc'd by the first lookup) must be host
 * memory, or a child fills the parent's swapped-out page with one the
 * parent then reads without a fault.  Blocks of the state's size class
 * made right after it share its slab page; after forks made with the
 * mm pushed out, every one of them still holds what the parent wrote. */
static void test_nss_state_survives_forks(void **state)
{
    (void)state;
    int idle[2];
    assert_int_equal(pipe(idle), 0);
    pthread_t idler;
    assert_int_equal(pthread_create(&idler, NULL, idle_fn, &idle[0]), 0);
    struct passwd *pw = getpwuid(0); /* the first lookup: the state made */
    if (!pw)
        ktest_skip("no passwd entry for uid 0 here");
    char name[64];
    snprintf(name, sizeof name, "%s", pw->pw_name);
    enum { N = 4000, SIZE = 176 };
    static unsigned char *near[N];
    for (int i = 0; i < N; i++) {
        near[i] = malloc(SIZE);
        assert_non_null(near[i]);
        fill(near[i], SIZE, (unsigned)i * 3);
    }
    struct vmstat s0, s1;
    read_stats(&s0);
    for (int i = 0; i < 4; i++) {
        push_out();
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(0);
        int st = wait_bounded(pid);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        for (int j = 0; j < N; j++)
            if (!check(near[j], SIZE, (unsigned)j * 3))
                fail_msg("fork %d: block %d (%p) changed", i, j,
                         (void *)near[j]);
    }
    read_stats(&s1);
    assert_true(s1.pswpout > s0.pswpout);
    pw = getpwuid(0);
    assert_non_null(pw);
    assert_string_equal(pw->pw_name, name);
    for (int i = 0; i < N; i++)
        free(near[i]);
    close(idle[1]);
    pthread_join(idler, NULL);
    close(idle[0]);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libc_objects_are_host_memory),
        cmocka_unit_test(test_fork_children_start_threads_and_exec),
        cmocka_unit_test(test_nss_state_survives_forks),
    };
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(test_libc_objects_are_host_memory),
        cmocka_unit_test(test_nss_state_survives_forks),
    };
    return ktest_main(argc, argv, tests, alone, vmm_test_setup, NULL);
}
