/*
 * fuzz/fuzz_malloc.h — kslab's malloc family under other names, for the
 * fuzz target.  A sanitizer program has the sanitizer's malloc; so that
 * fuzz_api.c can drive kslab's own entry points beside it, the fuzz build
 * compiles the interposer sources with this header forced in (-include), which
 * renames every exported allocation function to fz_<name>.  The
 * interposer's glibc aliases (__libc_malloc …) become plain declarations of
 * renamed functions: `alias` is defined away, so nothing of the process's
 * own malloc is replaced.  fuzz_api.c includes it too, for the prototypes.
 */
#ifndef KSLAB_FUZZ_MALLOC_H
#define KSLAB_FUZZ_MALLOC_H

#include <stddef.h>

#define malloc fz_malloc
#define free fz_free
#define cfree fz_cfree
#define calloc fz_calloc
#define realloc fz_realloc
#define reallocarray fz_reallocarray
#define posix_memalign fz_posix_memalign
#define aligned_alloc fz_aligned_alloc
#define memalign fz_memalign
#define valloc fz_valloc
#define pvalloc fz_pvalloc
#define malloc_usable_size fz_malloc_usable_size
#define __libc_malloc fz___libc_malloc
#define __libc_free fz___libc_free
#define __libc_calloc fz___libc_calloc
#define __libc_realloc fz___libc_realloc
#define __libc_memalign fz___libc_memalign
#define __libc_valloc fz___libc_valloc
#define __libc_pvalloc fz___libc_pvalloc
#define __posix_memalign fz___posix_memalign
#define alias(x) unused
#define copy(x) unused

void *fz_malloc(size_t size);
void fz_free(void *p);
void *fz_calloc(size_t n, size_t size);
void *fz_realloc(void *p, size_t size);
int fz_posix_memalign(void **memptr, size_t align, size_t size);
void *fz_aligned_alloc(size_t align, size_t size);
size_t fz_malloc_usable_size(void *p);

#endif /* KSLAB_FUZZ_MALLOC_H */
