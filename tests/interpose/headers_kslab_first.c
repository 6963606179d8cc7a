/*
 * tests/interpose/headers_kslab_first.c — the public headers before
 * <sys/user.h> and <sys/swap.h>: kslab spells PAGE_SIZE, PAGE_MASK and
 * SWAP_FLAG_* as glibc does, so glibc's definitions that follow are not
 * "redefined" either.
 */
#include <kslab/kslab.h>

#include <sys/mman.h>
#include <sys/swap.h>
#include <sys/user.h>

unsigned long headers_kslab_first_page_mask(void);

unsigned long headers_kslab_first_page_mask(void)
{
    return PAGE_MASK + PAGE_ALIGN(1UL) + SWAP_FLAG_PREFER;
}
