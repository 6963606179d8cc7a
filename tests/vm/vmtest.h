/*
 * tests/vm/vmtest.h — helpers of the address-space tests: typed access to
 * user memory of an mm through its host window, and the setup a forked
 * child needs before it can die of a fault (cmocka's own SIGSEGV handler
 * must not be the one kslab chains to).
 */
#ifndef KSLAB_TESTS_VMTEST_H
#define KSLAB_TESTS_VMTEST_H

#include "ktest.h"

#include <errno.h>
#include <sys/mman.h>

#include <kslab/vm.h>

#include "lib/options.h"
#include "vm/mm/mm.h"

/* ASan would turn a deadly SIGSEGV into exit(1); the tests want the signal. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "handle_segv=0:handle_sigbus=0:allow_user_segv_handler=1";
}

#define U8(mm, a) (*(volatile unsigned char *)mm_host((mm), (a)))
#define U64(mm, a) (*(volatile unsigned long *)mm_host((mm), (a)))

static inline unsigned long anon(struct mm_struct *mm, unsigned long addr,
                                 unsigned long len, int prot, int flags)
{
    return do_mmap(mm, -1, addr, len, (unsigned long)prot,
                   (unsigned long)(flags | MAP_ANONYMOUS), 0);
}

/* In a forked child: make the default action the handler kslab chains to. */
static inline void child_default_segv(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGSEGV, &sa, NULL);
    vm_fault_init();
}

/* Setup and teardown of a test that counts pages or faults one by one:
 * fault-around (memory.c, KSLAB_VM_FAULT_AROUND) off while it runs. */
static unsigned long vmtest_fault_around_saved;
static inline int fault_around_off(void **state)
{
    (void)state;
    vmtest_fault_around_saved = kslab_opt.vm_fault_around;
    kslab_opt.vm_fault_around = 1;
    return 0;
}

static inline int fault_around_restore(void **state)
{
    (void)state;
    kslab_opt.vm_fault_around = vmtest_fault_around_saved;
    return 0;
}

/* Teardown of a test that limits user memory (vm_set_ram_pages): the
 * limit is lifted even when an assert ended the test early. */
static inline int vm_ram_teardown(void **state)
{
    (void)state;
    vm_set_ram_pages(0);
    return 0;
}

static inline struct mm_stat stat_of(struct mm_struct *mm)
{
    struct mm_stat st;
    mm_get_stat(mm, &st);
    return st;
}

static inline int count_vmas(struct mm_struct *mm)
{
    int n = 0;
    for (struct vm_area_struct *v = mm->mmap; v; v = v->vm_next)
        n++;
    return n;
}

/* An unlinked temporary file: its descriptor. */
static inline int tmp_file(void)
{
    char path[] = "/tmp/kslab-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

/* A temporary file of pages pages, word j of page i holding
 * i * 1000 + j. */
static inline int patterned_file(unsigned long pages)
{
    int fd = tmp_file();
    for (unsigned long i = 0; i < pages; i++) {
        unsigned long page[PAGE_SIZE / sizeof(unsigned long)];
        for (size_t j = 0; j < PAGE_SIZE / sizeof(unsigned long); j++)
            page[j] = i * 1000 + j;
        assert_int_equal(write(fd, page, PAGE_SIZE), PAGE_SIZE);
    }
    return fd;
}

#endif
