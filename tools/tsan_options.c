/*
 * tools/tsan_options.c — ThreadSanitizer's options and suppressions for the
 * TSan configuration (KSLAB_TSAN).  The top-level CMakeLists adds this file
 * to every program that links kslab_core in that configuration; it is never
 * part of a library.  What stays here is what TSan cannot know, not races:
 *
 * - detect_deadlocks=0: the lock-order checker of TSan tracks at most 64
 *   mutexes held by one thread; kslab's fork handler holds every cache's
 *   lock across fork() (slab_fork_prepare), more than 64 once the malloc
 *   size classes exist, and TSan would stop with a CHECK failure.  Data
 *   races are still reported.
 *
 * - race:host_map_run, a false positive of the address-space emulator: a
 *   fault handled in one thread maps a frame at a user page with mmap()
 *   (vm/mm/memory.c, host_map_run), and TSan's mmap interceptor counts that
 *   mmap as a write to the whole page.  Another thread that then reads or
 *   writes the page takes no fault and no lock: what orders it after the
 *   mmap is the host's page table, which TSan cannot see.  Races between
 *   two user accesses are still reported.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "detect_deadlocks=0";
}

const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "race:host_map_run\n";
}
