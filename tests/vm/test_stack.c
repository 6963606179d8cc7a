/*
 * tests/vm/test_stack.c — MAP_GROWSDOWN stacks: real faults just below a
 * stack grow it page by page down to RLIMIT_STACK; a fault past the limit
 * reaches the program's SIGSEGV handler (or kills); no mapping is placed
 * in the guard gap below a stack without MAP_FIXED, brk stops before it,
 * and a MAP_FIXED mapping in the gap stops the stack's growth at the gap;
 * copy_to_user and get_user_pages just below a stack grow it too.
 */
#include <setjmp.h>
#include <signal.h>

#include "vmtest.h"

#define STACK_TOP 0x80000000UL
#define GAP VM_STACK_GUARD_GAP

/* A stack of npages pages ending at STACK_TOP. */
static unsigned long stack_at(struct mm_struct *mm, unsigned long npages)
{
    unsigned long a =
        anon(mm, STACK_TOP - npages * PAGE_SIZE, npages * PAGE_SIZE,
             PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_GROWSDOWN | MAP_FIXED);
    assert_int_equal(a, STACK_TOP - npages * PAGE_SIZE);
    struct vm_area_struct *v = find_vma(mm, a);
    assert_non_null(v);
    assert_true(v->vm_flags & VM_GROWSDOWN);
    return a;
}

static void test_stack_grows_down_to_its_limit(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    assert_int_equal(mm_setrlimit(mm, RLIMIT_STACK, 64 * PAGE_SIZE), 0);
    unsigned long s = stack_at(mm, 4);
    /* touch the pages below it going down, as a call chain would */
    for (unsigned long i = 1; i <= 60; i++) {
        U64(mm, s - i * PAGE_SIZE) = i;
        struct vm_area_struct *v = find_vma(mm, s - i * PAGE_SIZE);
        assert_int_equal(v->vm_start, s - i * PAGE_SIZE);
        assert_int_equal(v->vm_end, STACK_TOP);
    }
    for (unsigned long i = 1; i <= 60; i++)
        assert_int_equal(U64(mm, s - i * PAGE_SIZE), i);
    assert_int_equal(count_vmas(mm), 1);
    assert_int_equal(stat_of(mm).rss, 60);
    /* the stack is 64 pages now, the limit: one more does not fit */
    unsigned char c = 7;
    assert_int_equal(copy_to_user(mm, s - 61 * PAGE_SIZE, &c, 1), 1);
    assert_int_equal(find_vma(mm, 0)->vm_start, s - 60 * PAGE_SIZE);
    /* a read a few pages below grows it too (zero-filled pages) */
    mmput(mm);
    mm = mm_alloc();
    s = stack_at(mm, 1);
    assert_int_equal(U64(mm, s - 3 * PAGE_SIZE + 8), 0);
    assert_int_equal(find_vma(mm, 0)->vm_start, s - 3 * PAGE_SIZE);
    vm_check_mm(mm);
    mmput(mm);
}

static sigjmp_buf jb;
static volatile sig_atomic_t handled;

static void jump_handler(int sig)
{
    (void)sig;
    handled++;
    siglongjmp(jb, 1);
}

/* In a child: the program's handler behind kslab's, a stack limited to 8
 * pages, faults below it until one is refused. */
static void past_limit_body(int with_handler)
{
    if (with_handler) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = jump_handler;
        sa.sa_flags = SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, NULL);
        vm_fault_init();
    } else {
        child_default_segv();
    }
    alarm(10);
    struct mm_struct *mm = mm_alloc();
    if (mm_setrlimit(mm, RLIMIT_STACK, 8 * PAGE_SIZE) != 0)
        _exit(90);
    unsigned long s =
        anon(mm, STACK_TOP - PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_GROWSDOWN | MAP_FIXED);
    if (s != STACK_TOP - PAGE_SIZE)
        _exit(91);
    volatile unsigned long i = 1;
    if (sigsetjmp(jb, 1) == 0) {
        for (; i < 100; i++)
            U64(mm, s - i * PAGE_SIZE) = i;
        _exit(92); /* never refused */
    }
    /* the handler ran for the first page past 8 pages of stack */
    _exit(i == 8 && handled == 1 ? 0 : 93);
}

static int run_child(int with_handler)
{
    pid_t pid = fork();
    if (pid == 0)
        past_limit_body(with_handler);
    int st;
    waitpid(pid, &st, 0);
    return st;
}

static void test_fault_past_limit_reaches_program_handler(void **state)
{
    (void)state;
#if defined(__SANITIZE_THREAD__)
    ktest_skip("TSan keeps SIGSEGV blocked after a jump out of a handler");
#endif
    int st = run_child(1);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_fault_past_limit_kills(void **state)
{
    (void)state;
    int st = run_child(0);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSEGV);
}

static void test_no_mapping_placed_in_guard_gap(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    /* a stack just above the bottom of the mmap area: without the gap the
     * room below it is where the next mapping goes */
    unsigned long g = TASK_UNMAPPED_BASE + 16 * PAGE_SIZE;
    assert_int_equal(anon(mm, g, PAGE_SIZE, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_GROWSDOWN | MAP_FIXED),
                     g);
    unsigned long a = anon(mm, 0, PAGE_SIZE, PROT_READ, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(a));
    assert_true(a + PAGE_SIZE <= g - GAP || a >= g + PAGE_SIZE);
    /* a hint in the gap is not taken either */
    unsigned long h =
        anon(mm, g - 4 * PAGE_SIZE, PAGE_SIZE, PROT_READ, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(h));
    assert_true(h + PAGE_SIZE <= g - GAP || h >= g + PAGE_SIZE);
    /* a hint that ends exactly at the gap is */
    unsigned long e = 0x60000000UL;
    assert_int_equal(anon(mm, e, PAGE_SIZE, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_GROWSDOWN | MAP_FIXED),
                     e);
    assert_int_equal(
        anon(mm, e - GAP - PAGE_SIZE, PAGE_SIZE, PROT_READ, MAP_PRIVATE),
        e - GAP - PAGE_SIZE);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_brk_stops_before_guard_gap(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long b = sys_brk(mm, 0);
    unsigned long st = b + 64 * PAGE_SIZE;
    assert_int_equal(anon(mm, st, PAGE_SIZE, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_GROWSDOWN | MAP_FIXED),
                     st);
    assert_int_equal(sys_brk(mm, b + PAGE_SIZE), b); /* into the gap */
    mmput(mm);
    mm = mm_alloc();
    b = sys_brk(mm, 0);
    st = b + GAP + 2 * PAGE_SIZE;
    assert_int_equal(anon(mm, st, PAGE_SIZE, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_GROWSDOWN | MAP_FIXED),
                     st);
    assert_int_equal(sys_brk(mm, b + PAGE_SIZE), b + PAGE_SIZE);
    mmput(mm);
}

static void test_fixed_mapping_in_gap_stops_growth(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    assert_int_equal(mm_setrlimit(mm, RLIMIT_STACK, RLIM_INFINITY), 0);
    unsigned long s = stack_at(mm, 1);
    /* MAP_FIXED is obeyed inside the gap, as Linux obeys it */
    unsigned long m = s - 8 * PAGE_SIZE;
    assert_int_equal(
        anon(mm, m, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED),
        m);
    unsigned char c = 1;
    assert_int_equal(copy_to_user(mm, s - PAGE_SIZE, &c, 1), 1);
    assert_int_equal(find_vma(mm, m + PAGE_SIZE)->vm_start, s);
    /* further down, a mapping at least the gap below lets it grow to the
     * gap's edge and no further */
    mmput(mm);
    mm = mm_alloc();
    assert_int_equal(mm_setrlimit(mm, RLIMIT_STACK, RLIM_INFINITY), 0);
    s = stack_at(mm, 1);
    m = s - GAP - 8 * PAGE_SIZE;
    assert_int_equal(
        anon(mm, m, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED),
        m);
    unsigned long edge = m + PAGE_SIZE + GAP;
    assert_int_equal(copy_to_user(mm, edge, &c, 1), 0);
    assert_int_equal(find_vma(mm, edge)->vm_start, edge);
    assert_int_equal(copy_to_user(mm, edge - PAGE_SIZE, &c, 1), 1);
    /* a PROT_NONE mapping (a guard page) does not stop it */
    assert_int_equal(sys_mprotect(mm, m, PAGE_SIZE, PROT_NONE), 0);
    assert_int_equal(copy_to_user(mm, edge - PAGE_SIZE, &c, 1), 0);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_uaccess_below_stack_grows_it(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long s = stack_at(mm, 1);
    char buf[64] = "below the stack";
    assert_int_equal(copy_to_user(mm, s - 2 * PAGE_SIZE + 10, buf, sizeof buf),
                     0);
    assert_int_equal(find_vma(mm, 0)->vm_start, s - 2 * PAGE_SIZE);
    char out[64];
    assert_int_equal(copy_from_user(mm, out, s - 2 * PAGE_SIZE + 10, 64), 0);
    assert_string_equal(out, buf);
    struct page *pg[2];
    assert_int_equal(get_user_pages(mm, s - 4 * PAGE_SIZE, 2, 1, pg), 2);
    put_page(pg[0]);
    put_page(pg[1]);
    assert_int_equal(find_vma(mm, 0)->vm_start, s - 4 * PAGE_SIZE);
    /* not below a stack: nothing grows */
    unsigned long a = anon(mm, 0x50000000UL, PAGE_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_FIXED);
    assert_int_equal(copy_to_user(mm, a - PAGE_SIZE, buf, 1), 1);
    assert_int_equal(find_vma(mm, a - PAGE_SIZE)->vm_start, a);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_growsdown_only_private_anonymous(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    assert_int_equal(anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_GROWSDOWN),
                     (unsigned long)-EINVAL);
    assert_int_equal(count_vmas(mm), 0);
    mmput(mm);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stack_grows_down_to_its_limit,
                                        fault_around_off, fault_around_restore),
        cmocka_unit_test(test_fault_past_limit_kills),
        cmocka_unit_test(test_no_mapping_placed_in_guard_gap),
        cmocka_unit_test(test_brk_stops_before_guard_gap),
        cmocka_unit_test(test_fixed_mapping_in_gap_stops_growth),
        cmocka_unit_test(test_uaccess_below_stack_grows_it),
        cmocka_unit_test(test_growsdown_only_private_anonymous),
    };
    const struct CMUnitTest alone[] = {
        ktest_alone(test_fault_past_limit_reaches_program_handler),
    };
    return ktest_main(argc, argv, tests, alone, NULL, NULL);
}
