/*
 * tests/vmmode/test_vmstats.c — KSLAB_VM_STATS_DIR under libkslab-vm.so
 * (LD_PRELOAD, 8 MiB of emulated memory, set by CMakeLists.txt): a child
 * that keeps allocating and touching more than its memory has its mm's
 * vmstat, meminfo and maps in the directory (made by it) while it runs,
 * rewritten as it goes (pgfault grows, pswpout appears) by a thread named
 * kslab-vmstat, and written once more at exit; a bad value is one warning
 * line and ignored; without the option no such thread is started; a
 * host fork's child has its own thread and directory only with %p.
 */
#include <dirent.h>
#include <signal.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ktest.h"

#define MB (1UL << 20)
#define WAIT_S 60 /* generous: the machine is loaded */

static char self_path[4096];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The whole file, NUL ended, in buf; 0 or -1. */
static int slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = 0;
    fclose(f);
    return 0;
}

/* The number after "key " at the start of a line of path; -1 if none. */
static long counter(const char *path, const char *key)
{
    char buf[4096], pat[64];
    buf[0] = '\n';
    if (slurp(path, buf + 1, sizeof buf - 1) != 0)
        return -1;
    snprintf(pat, sizeof pat, "\n%s ", key);
    const char *p = strstr(buf, pat);
    return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

/* Tasks of pid (0: this process) named kslab-vmstat. */
static int stats_threads(pid_t pid)
{
    char path[128];
    snprintf(path, sizeof path, "/proc/%d/task",
             pid ? (int)pid : (int)getpid());
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char comm[64], p[512];
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s/comm", path, e->d_name);
        if (slurp(p, comm, sizeof comm) == 0 && !strcmp(comm, "kslab-vmstat\n"))
            n++;
    }
    closedir(d);
    return n;
}

/* A large block (in the mm's heap) and an anonymous mapping, touched:
 * the points where the thread may start. */
static void allocate_some(void)
{
    char *p = malloc(MB);
    char *q = mmap(NULL, MB, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!p || q == MAP_FAILED)
        _exit(3);
    memset(p, 1, MB);
    memset(q, 1, MB);
    free(p);
    munmap(q, MB);
}

/* ---- the child's modes ---- */

/* Keeps 18 MiB (more than twice its memory) in 96 KiB blocks (in the
 * mm's heap: below the 128 KiB mmap threshold), replacing one a step and
 * touching it, until $KTEST_STOP exists or WAIT_S * 3 seconds pass. */
#define NBLOCKS 192
#define BLOCK (96UL << 10)
static int child_churn(void)
{
    const char *stop = getenv("KTEST_STOP");
    static char *blocks[NBLOCKS];
    double end = now() + WAIT_S * 3;
    for (unsigned i = 0; now() < end && access(stop, F_OK) != 0; i++) {
        free(blocks[i % NBLOCKS]);
        blocks[i % NBLOCKS] = malloc(BLOCK);
        if (!blocks[i % NBLOCKS])
            return 3;
        for (size_t j = 0; j < BLOCK; j += 4096)
            blocks[i % NBLOCKS][j] = (char)i;
        if (i % 16 == 0)
            nap_ms(2);
    }
    for (int i = 0; i < NBLOCKS; i++)
        free(blocks[i]);
    return 0;
}

/* Exit 0 when a kslab-vmstat thread appears within WAIT_S seconds. */
static int child_thread_yes(void)
{
    allocate_some();
    for (double end = now() + WAIT_S; now() < end; nap_ms(10))
        if (stats_threads(0) == 1)
            return 0;
    return 4;
}

/* Exit 0 when no kslab-vmstat thread is there a while after allocating. */
static int child_thread_no(void)
{
    allocate_some();
    nap_ms(1500);
    return stats_threads(0) == 0 ? 0 : 5;
}

/* A host fork after the thread started: the child has a thread of its
 * own (exit 0) when the directory has %p, none (exit 0) otherwise. */
static int child_fork(void)
{
    allocate_some();
    int own = strstr(getenv("KSLAB_VM_STATS_DIR"), "%p") != NULL;
    pid_t pid = fork();
    if (pid == 0) {
        allocate_some();
        if (!own) {
            nap_ms(1500);
            _exit(stats_threads(0) == 0 ? 0 : 6);
        }
        for (double end = now() + WAIT_S; now() < end; nap_ms(10))
            if (stats_threads(0) == 1)
                _exit(0);
        _exit(7);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return 8;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 9;
}

static int child_quick(void)
{
    allocate_some();
    return 0;
}

/* ---- the tests ---- */

static int setup(void **state)
{
    (void)state;
    if (!dlsym(RTLD_DEFAULT, "kslab_stats_print") ||
        !dlsym(RTLD_DEFAULT, "sbrk")) {
        fprintf(stderr, "not run under libkslab-vm.so\n");
        exit(KTEST_SKIP);
    }
    return 0;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[4096];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        rm_tree(p);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static pid_t spawn(const char *mode, const char *const *env)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct ktest_exec x = {self_path, mode, env};
        ktest_exec_self(&x);
    }
    assert_true(pid > 0);
    return pid;
}

/* The churning child, killed by the teardown when a check failed. */
static pid_t churn_pid;

static int teardown(void **state)
{
    (void)state;
    if (churn_pid > 0) {
        kill(churn_pid, SIGKILL);
        waitpid(churn_pid, NULL, 0);
    }
    churn_pid = 0;
    return 0;
}

static int alive(pid_t pid)
{
    return waitpid(pid, NULL, WNOHANG) == 0;
}

/* The files appear in the directory (made by the child) while the child
 * runs, are rewritten as it faults and swaps, and stay at its exit, with
 * no temporary file left. */
static void test_live_files(void **state)
{
    (void)state;
    char base[] = "/tmp/kslab-vmstats.XXXXXX";
    assert_non_null(mkdtemp(base));
    char dir[256], opt[300], stop[300], stopenv[320], vmstat[300], meminfo[300],
        maps[300], buf[8192];
    snprintf(dir, sizeof dir, "%s/live", base);
    snprintf(opt, sizeof opt, "KSLAB_VM_STATS_DIR=%s", dir);
    snprintf(stop, sizeof stop, "%s/stop", base);
    snprintf(stopenv, sizeof stopenv, "KTEST_STOP=%s", stop);
    snprintf(vmstat, sizeof vmstat, "%s/vmstat", dir);
    snprintf(meminfo, sizeof meminfo, "%s/meminfo", dir);
    snprintf(maps, sizeof maps, "%s/maps", dir);
    const char *env[] = {opt, stopenv, NULL};
    pid_t pid = churn_pid = spawn("churn", env);

    long flt = -1;
    for (double end = now() + WAIT_S; now() < end && flt <= 0; nap_ms(20))
        flt = counter(vmstat, "pgfault");
    assert_true(flt > 0);
    assert_true(alive(pid));
    assert_int_equal(slurp(meminfo, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "MemTotal: "));
    assert_non_null(strstr(buf, "SwapTotal: "));
    /* the first faults may be the small blocks' (in the mm too), before
     * the child's heap is made: its maps show it by the next rewrite */
    int heap = 0;
    for (double end = now() + WAIT_S; now() < end && !heap; nap_ms(20)) {
        assert_int_equal(slurp(maps, buf, sizeof buf), 0);
        heap = strstr(buf, "[heap]\n") != NULL;
    }
    assert_true(heap);
    assert_int_equal(stats_threads(pid), 1);

    /* rewritten: more faults, and swapping, while it still runs */
    long later = flt, out = 0;
    for (double end = now() + WAIT_S; now() < end && (later <= flt || out <= 0);
         nap_ms(20)) {
        long v = counter(vmstat, "pgfault"), o = counter(vmstat, "pswpout");
        if (v < 0 || o < 0) /* every read sees a whole file */
            fail_msg("vmstat without pgfault or pswpout");
        later = v;
        out = o;
    }
    assert_true(later > flt);
    assert_true(out > 0);
    assert_true(alive(pid));

    FILE *f = fopen(stop, "w");
    assert_non_null(f);
    fclose(f);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    churn_pid = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(counter(vmstat, "pgfault") >= later);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            files++;
    closedir(d);
    assert_int_equal(files, 3);
    rm_tree(base);
}

/* A malformed value is one warning line naming the expected form and is
 * ignored; a good one is silent, and a short run's files are written at
 * its exit. */
static void test_bad_value_one_line(void **state)
{
    (void)state;
    static const char *const bad[] = {"KSLAB_VM_STATS_DIR=relative/dir",
                                      "KSLAB_VM_STATS_DIR=/tmp/x%d"};
    char err[4096];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *env[] = {bad[i], NULL};
        struct ktest_exec x = {self_path, "quick", env};
        int st = ktest_run_child(ktest_exec_self, &x, err, sizeof err);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        const char *nl = strchr(err, '\n');
        if (strncmp(err, "kslab: ", 7) || !nl || nl[1])
            fail_msg("not one line: %s", err);
        if (!strstr(err, "KSLAB_VM_STATS_DIR") || !strstr(err, "expected"))
            fail_msg("not the option's warning: %s", err);
    }
    assert_int_equal(access("relative", F_OK), -1);

    char base[] = "/tmp/kslab-vmstats.XXXXXX";
    assert_non_null(mkdtemp(base));
    char opt[300], vmstat[300];
    snprintf(opt, sizeof opt, "KSLAB_VM_STATS_DIR=%s/d%%p", base);
    const char *env[] = {opt, NULL};
    struct ktest_exec x = {self_path, "quick", env};
    int st = ktest_run_child(ktest_exec_self, &x, err, sizeof err);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_string_equal(err, "");
    /* %p is the pid: ktest_run_child's child execs, keeping its pid */
    DIR *d = opendir(base);
    assert_non_null(d);
    struct dirent *e;
    vmstat[0] = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] == 'd' && atoi(e->d_name + 1) > 0)
            snprintf(vmstat, sizeof vmstat, "%s/%s/vmstat", base, e->d_name);
    closedir(d);
    assert_true(vmstat[0] != 0);
    assert_true(counter(vmstat, "pgfault") > 0);
    rm_tree(base);
}

/* The thread is there with the option and not without it. */
static void test_thread_only_with_option(void **state)
{
    (void)state;
    char base[] = "/tmp/kslab-vmstats.XXXXXX";
    assert_non_null(mkdtemp(base));
    char opt[300];
    snprintf(opt, sizeof opt, "KSLAB_VM_STATS_DIR=%s", base);
    const char *with[] = {opt, NULL};
    int st;
    pid_t pid = spawn("thread-yes", with);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pid = spawn("thread-no", NULL);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    rm_tree(base);
}

/* A host fork's child writes its own directory with %p, nothing
 * without. */
static void test_fork_child(void **state)
{
    (void)state;
    char base[] = "/tmp/kslab-vmstats.XXXXXX";
    assert_non_null(mkdtemp(base));
    char opt[300];
    int st;
    snprintf(opt, sizeof opt, "KSLAB_VM_STATS_DIR=%s/d%%p", base);
    const char *with[] = {opt, NULL};
    pid_t pid = spawn("fork", with);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    int dirs = 0;
    DIR *d = opendir(base);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        dirs += e->d_name[0] == 'd';
    closedir(d);
    assert_int_equal(dirs, 2); /* the parent's and the child's */
    rm_tree(base);

    strcpy(base, "/tmp/kslab-vmstats.XXXXXX");
    assert_non_null(mkdtemp(base));
    snprintf(opt, sizeof opt, "KSLAB_VM_STATS_DIR=%s", base);
    pid = spawn("fork", with);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    rm_tree(base);
}

int main(int argc, char **argv)
{
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (n <= 0)
        return KTEST_SKIP;
    self_path[n] = 0;
    if (argc == 2 && !strcmp(argv[1], "churn"))
        return child_churn();
    if (argc == 2 && !strcmp(argv[1], "thread-yes"))
        return child_thread_yes();
    if (argc == 2 && !strcmp(argv[1], "thread-no"))
        return child_thread_no();
    if (argc == 2 && !strcmp(argv[1], "fork"))
        return child_fork();
    if (argc == 2 && !strcmp(argv[1], "quick"))
        return child_quick();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_live_files, teardown),
        cmocka_unit_test(test_bad_value_one_line),
        cmocka_unit_test(test_thread_only_with_option),
        cmocka_unit_test(test_fork_child),
    };
    const struct CMUnitTest alone[] = {
        cmocka_unit_test_teardown(test_live_files, teardown),
    };
    return ktest_main(argc, argv, tests, alone, setup, NULL);
}
