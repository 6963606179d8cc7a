/*
 * <kslab/kslab.h> — everything: the slab layer, the page layer, and the
 * malloc-side extras of the interposer (statistics and options).
 */
#ifndef KSLAB_KSLAB_H
#define KSLAB_KSLAB_H

#include <stdio.h>

#include <kslab/slab.h>
#include <kslab/vm.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KSLAB_VERSION_MAJOR 0
#define KSLAB_VERSION_MINOR 1

/* Prints slabinfo and the large-block totals of the malloc family. */
KSLAB_API void kslab_stats_print(FILE *out);

/* Debugging (KSLAB_DEBUG; README.md, "Debugging with kslab"). */

/* Runs every cache's and zone's validator now.  0 when all is consistent;
 * otherwise minus the number of broken caches (plus one for broken zones),
 * each named by one line on stderr (its first broken invariant); it
 * aborts on nothing. */
KSLAB_API int kslab_verify(void);
/* Searches for leaked blocks now (KSLAB_DEBUG=leaks or audit) and prints
 * them to out (stderr when NULL) as LeakSanitizer does; returns the bytes
 * leaked (not counting suppressed leaks). */
KSLAB_API size_t kslab_leak_check(FILE *out);
/* Prints the KSLAB_DEBUG=log ring, oldest event first (stderr when NULL). */
KSLAB_API void kslab_log_print(FILE *out);

#ifdef __cplusplus
}
#endif
#endif /* KSLAB_KSLAB_H */
