/* Shared by the tests that run under libkslab-vm.so: the mm's figures
 * read back from KSLAB_STATS's report, and a pattern to fill and check
 * memory with.  A test includes it after cmocka (ktest.h). */
#ifndef KSLAB_TESTS_VMMTEST_H
#define KSLAB_TESTS_VMMTEST_H

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MB (1UL << 20)
#define TASK_BYTES 0xC0000000UL

/* What the report says of the process's mm (0 where it says nothing). */
struct vmstat {
    uintptr_t window; /* the mm's window in the process */
    unsigned long pgfault, pgmajfault, pswpin, pswpout, pgscan, mem_kb;
    int thread;           /* a userfaultfd handler thread serves it */
    unsigned long served; /* faults that thread served */
    int wp;               /* and its write-protect mode: read-only pages too */
    /* the slab line (small blocks in the mm): chunks of the mm the slabs
     * took, kB in slabs, kB of freed slab pages kept */
    unsigned long slab_chunks, slab_kb, slab_kept_kb;
};

static inline void read_stats(struct vmstat *s)
{
    void (*print)(FILE *) =
        (void (*)(FILE *))dlsym(RTLD_DEFAULT, "kslab_stats_print");
    assert_non_null(print);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    print(f);
    fclose(f);
    memset(s, 0, sizeof *s);
    char *w = strstr(buf, "at window ");
    assert_non_null(w);
    s->window = (uintptr_t)strtoull(w + 10, NULL, 16);
    struct {
        const char *key;
        unsigned long *v;
    } keys[] = {{"\npgfault ", &s->pgfault}, {"\npgmajfault ", &s->pgmajfault},
                {"\npswpin ", &s->pswpin},   {"\npswpout ", &s->pswpout},
                {"\npgscan ", &s->pgscan},   {"\nMemTotal:", &s->mem_kb}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char *k = strstr(buf, keys[i].key);
        assert_non_null(k);
        *keys[i].v = strtoul(k + strlen(keys[i].key), NULL, 10);
    }
    char *t = strstr(buf, "served by the userfaultfd handler thread (");
    s->thread = t != NULL;
    if (t)
        s->served = strtoul(strchr(t, '(') + 1, NULL, 10);
    s->wp = strstr(buf, "write-protected pages too") != NULL;
    char *h = strstr(buf, "vm: slabs ");
    char *k = h ? strstr(h, " kB in ") : NULL;
    if (k) {
        s->slab_chunks = strtoul(k + strlen(" kB in "), NULL, 10);
        k = strstr(k, " chunks of the mm: ");
        assert_non_null(k);
        s->slab_kb = strtoul(k + strlen(" chunks of the mm: "), &k, 10);
        k = strstr(k, "slabs, ");
        assert_non_null(k);
        s->slab_kept_kb = strtoul(k + strlen("slabs, "), NULL, 10);
    }
    free(buf);
}

/* Is p inside the mm's window? */
static inline int in_mm(const void *p)
{
    struct vmstat s;
    read_stats(&s);
    return (uintptr_t)p >= s.window && (uintptr_t)p < s.window + TASK_BYTES;
}

static inline unsigned char pat(uintptr_t i, unsigned seed)
{
    return (unsigned char)((i * 2654435761u) >> 13) ^ (unsigned char)seed;
}

static inline void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pat(i, seed);
}

static inline int check(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(i, seed))
            return 0;
    return 1;
}

/* Group setup: skips (exit 77) unless run under libkslab-vm.so with an
 * emulated mm. */
static inline int vmm_test_setup(void **state)
{
    (void)state;
    if (!dlsym(RTLD_DEFAULT, "kslab_stats_print") ||
        !dlsym(RTLD_DEFAULT, "sbrk")) {
        fprintf(stderr, "not run under libkslab-vm.so\n");
        exit(KTEST_SKIP);
    }
    struct vmstat s;
    read_stats(&s);
    if (!s.window) {
        fprintf(stderr, "no emulated mm\n");
        exit(KTEST_SKIP);
    }
    return 0;
}

#endif
