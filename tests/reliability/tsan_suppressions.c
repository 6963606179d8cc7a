/*
 * tests/reliability/tsan_suppressions.c — the ThreadSanitizer suppressions
 * built into every program of the TSan configuration (KSLAB_TSAN: the
 * top-level CMakeLists adds this file to whatever links kslab_core).
 *
 * One suppression, for a false positive of the address-space emulator: a
 * fault handled in one thread maps a frame at a user page with mmap()
 * (vm/memory.c, host_map_run), and TSan counts that mmap as a write to the
 * whole page.  Another thread that then reads or writes the page takes no
 * fault and no lock: what orders it after the mmap is the host's page
 * table, which TSan cannot see, so it reports a race between the mmap and
 * the access.  Races between two user accesses, and any race inside
 * kslab's own structures, are still reported.
 */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "race:host_map_run\n";
}
