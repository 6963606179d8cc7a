/*
 * tools/tsan_options.c — ThreadSanitizer's options for the
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
 * No race is suppressed: the emulator's mappings over user memory are made
 * with the raw system call in a TSan build (vm/frames/os.c, window_mmap),
 * so TSan reports only races between accesses it sees.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "detect_deadlocks=0";
}
