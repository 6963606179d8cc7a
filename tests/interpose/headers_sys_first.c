/*
 * tests/interpose/headers_sys_first.c — the public headers after the
 * system headers that define the same names (<sys/user.h>: PAGE_SHIFT,
 * PAGE_SIZE, PAGE_MASK; <sys/swap.h>: SWAP_FLAG_*).  Compiled with
 * -Werror: a "redefined" warning fails the build.
 */
#include <sys/mman.h>
#include <sys/swap.h>
#include <sys/user.h>

#include <kslab/kslab.h>

unsigned long headers_sys_first_page_mask(void);

unsigned long headers_sys_first_page_mask(void)
{
    return PAGE_MASK + PAGE_ALIGN(1UL) + SWAP_FLAG_PREFER;
}
