/*
 * tests/reliability/tsan_suppressions.c — the ThreadSanitizer options and
 * suppressions built into every program of the TSan configuration (KSLAB_TSAN:
 * the top-level CMakeLists adds this file to whatever links kslab_core).
 *
 * One suppression, for a false positive of the address-space emulator: a
 * fault handled in one thread maps a frame at a user page with mmap()
 * (vm/mm/memory.c, host_map_run), and TSan counts that mmap as a write to the
 * whole page.  Another thread that then reads or writes the page takes no
 * fault and no lock: what orders it after the mmap is the host's page
 * table, which TSan cannot see, so it reports a race between the mmap and
 * the access.  Races between two user accesses are still reported.
 *
 * And one benign race of the buddy allocator, as in Linux (page_is_buddy):
 * freeing a block looks at its buddy's struct page (vm/frames/page_alloc.c,
 * __free_one_block; free_block_of for in-place growth) under the zone lock
 * to see whether PG_buddy is set, while the buddy, when it is allocated,
 * may have its other flag bits changed by its owner without that lock
 * (kmem_cache_grow setting PG_slab).  PG_buddy itself only changes under
 * the zone lock, so the answer is right; the proper fix is READ_ONCE-style
 * relaxed atomic flag accessors in vm/frames/page.h for every writer.
 */
/* The lock-order checker of TSan tracks at most 64 mutexes held by one
 * thread; kslab's fork handler holds every cache's lock across fork()
 * (lib/fork.c), more than 64 once the malloc size classes exist, and
 * TSan would stop with a CHECK failure.  So the deadlock detector is off in
 * the TSan configuration; data races are still reported. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "detect_deadlocks=0";
}

const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "race:host_map_run\n"
           "race:__free_one_block\n"
           "race:free_block_of\n";
}
