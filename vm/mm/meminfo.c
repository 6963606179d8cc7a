/*
 * vm/mm/meminfo.c — vm_meminfo, the "/proc/meminfo" view of the page layer
 * (2.4 fs/proc/proc_misc.c): low memory is the buddy zones (DMA and
 * Normal, as far as they have grown), high memory is user memory up to
 * its limit (vm_set_ram_pages); Cached is the page cache (pages of
 * mapped files and of shared anonymous memory, filemap.c), SwapCached the
 * swap cache.  Locking: the counters are read without
 * their locks — the view is a snapshot, each number consistent alone.
 */
#include <errno.h>
#include <stdio.h>

#include "vm/mm/mm.h"

#define KB(pages) ((pages) << (PAGE_SHIFT - 10))

/**
 * vm_meminfo - writes the memory summary to @out in /proc/meminfo form,
 * in kB.  Returns the characters written or a negative value.
 */
KSLAB_API int vm_meminfo(FILE *out)
{
    if (!out)
        return -EINVAL;
    unsigned long low_total = 0, low_free = 0;
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++) {
        struct zone_struct *zone = &vm_zones[z];
        low_total += __atomic_load_n(&zone->grown_pfn, __ATOMIC_RELAXED) -
                     zone->zone_start_pfn;
        low_free += __atomic_load_n(&zone->free_pages, __ATOMIC_RELAXED);
    }
    if (low_total > (1UL << 40)) /* a zone that never grew */
        low_total = 0;
    /* sections given back under an address-space limit are not memory */
    low_total -=
        atomic_load_explicit(&vm_lowmem.absent_pages, memory_order_relaxed);
    unsigned long high_total = 0, high_free = 0;
    if (vm_highmem_init() == 0) {
        high_total = __atomic_load_n(&vm_highmem.limit, __ATOMIC_RELAXED);
        high_free = vm_free_user_frames();
    }
    unsigned long swap_total, swap_free, vm_total, vm_used;
    vm_swap_totals(&swap_total, &swap_free);
    vm_vmalloc_stats(&vm_total, &vm_used);
    return fprintf(out,
                   "MemTotal:     %8lu kB\n"
                   "MemFree:      %8lu kB\n"
                   "Cached:       %8lu kB\n"
                   "SwapCached:   %8lu kB\n"
                   "HighTotal:    %8lu kB\n"
                   "HighFree:     %8lu kB\n"
                   "LowTotal:     %8lu kB\n"
                   "LowFree:      %8lu kB\n"
                   "SwapTotal:    %8lu kB\n"
                   "SwapFree:     %8lu kB\n"
                   "VmallocTotal: %8lu kB\n"
                   "VmallocUsed:  %8lu kB\n"
                   "PswpIn:       %8lu\n"
                   "PswpOut:      %8lu\n",
                   KB(low_total + high_total), KB(low_free + high_free),
                   KB(vm_page_cache_pages()), KB(vm_swap_cache_pages()),
                   KB(high_total), KB(high_free), KB(low_total), KB(low_free),
                   KB(swap_total), KB(swap_free), KB(vm_total), KB(vm_used),
                   (unsigned long)vm_pswpin, (unsigned long)vm_pswpout);
}
