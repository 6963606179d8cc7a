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

#ifdef __cplusplus
}
#endif
#endif /* KSLAB_KSLAB_H */
