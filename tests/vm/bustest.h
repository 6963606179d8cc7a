/*
 * tests/vm/bustest.h — catching the SIGBUS of an access to a file page
 * beyond the end of the file: install_bus_handler() (in the test body:
 * cmocka puts its own handlers in before each test function, and back
 * after), bus_on_access() to try one access, restore_bus_handler().
 */
#ifndef KSLAB_TESTS_BUSTEST_H
#define KSLAB_TESTS_BUSTEST_H

#include <setjmp.h>
#include <signal.h>

#include "vmtest.h"

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_count;
static volatile int bus_code;
static void *volatile bus_addr;
static struct sigaction old_bus;

static void bus_handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (sig != SIGBUS || si->si_signo != SIGBUS)
        _exit(9);
    bus_count++;
    bus_code = si->si_code;
    bus_addr = si->si_addr;
    siglongjmp(bus_jmp, 1);
}

static inline void install_bus_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = bus_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGBUS, &sa, &old_bus), 0);
}

static inline void restore_bus_handler(void)
{
    sigaction(SIGBUS, &old_bus, NULL);
}

/* Reads (or writes) user address a of mm: 1 when it raised SIGBUS
 * (checked to carry BUS_ADRERR and the host address of a), else 0. */
static inline int bus_on_access(struct mm_struct *mm, unsigned long a,
                                int write)
{
    int before = bus_count;
    if (sigsetjmp(bus_jmp, 1) == 0) {
        if (write)
            U64(mm, a) = 5;
        else
            (void)U64(mm, a);
        return 0;
    }
    assert_int_equal(bus_count, before + 1);
    assert_int_equal(bus_code, BUS_ADRERR);
    assert_ptr_equal(bus_addr, mm_host(mm, a));
    return 1;
}

#endif
