/*
 * lib/compiler.h — the compiler attributes every layer uses: branch hints
 * for the fast paths and the markers that keep slow paths out of line.
 */
#ifndef KSLAB_LIB_COMPILER_H
#define KSLAB_LIB_COMPILER_H

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define __cold __attribute__((cold, noinline))
#define __noinline __attribute__((noinline))
/* On the extern declaration of a variable a fast path reads: the
 * definition is hidden already (-fvisibility=hidden), and saying so where
 * it is used lets the compiler address it directly (one mov) instead of
 * through the GOT (a load of its address first). */
#define __hidden __attribute__((visibility("hidden")))

/* KSLAB_TSAN_BUILD: compiled with ThreadSanitizer (gcc or clang). */
#if defined(__SANITIZE_THREAD__)
#define KSLAB_TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KSLAB_TSAN_BUILD 1
#endif
#endif

#endif /* KSLAB_LIB_COMPILER_H */
