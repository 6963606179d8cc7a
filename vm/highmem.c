/*
 * vm/highmem.c — ZONE_HIGHMEM: user-memory frames.  Until the address-space
 * emulator provides its memfd-backed frames, there is no high memory and
 * __GFP_HIGHMEM requests fall back to low memory.
 */
#include "vm/page.h"

struct page *vm_highmem_alloc_pages(unsigned int order)
{
    (void)order;
    return NULL;
}

void vm_highmem_free_pages(struct page *page, unsigned int order)
{
    vm_die("__free_pages(): page %p (order %u) is not a high-memory frame",
           (void *)page, order);
}
