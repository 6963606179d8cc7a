/*
 * tests/interpose/aslimit_child.c — what test_aslimit.c runs under an
 * address-space limit (RLIMIT_AS), built twice: linked with libkslab.so,
 * and without kslab (then run with libkslab-preload.so preloaded).
 *   map      a 1500 MiB mapping of its own, then a 1500 MiB malloc block,
 *            both touched, then small and large blocks (limit 4 GiB)
 *   exhaust  malloc past the limit gives NULL with errno ENOMEM, for a
 *            block too big and for small blocks until the limit is reached
 *            (which must be most of it); after freeing, allocation works
 *            again (limit 512 MiB)
 * Address space given back once the memory is freed (limit 1 GiB): blocks
 * of 1000 bytes (small), 100 KiB (mid) or 3 MiB (huge) until malloc
 * fails, all freed, then
 *   refill-SIZE  malloc(256 MiB) succeeds at once
 *   map-SIZE     the program's own mmap(256 MiB) succeeds: at once after
 *                huge blocks (kept for reuse, they would hold it), within
 *                a bound of time after small and mid ones (their sections
 *                go back with the purge, after the decay time; with
 *                KSLAB_DECAY_MS=never only malloc_trim() gives them back)
 * Exit status 0, or the number of the check that failed.
 */
#include <stdio.h>
#include <time.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Touches one byte per MiB (the address space is what is tested; the
 * machine may be busy). */
static void touch(char *p, size_t len)
{
    for (size_t i = 0; i < len; i += 1 << 20)
        p[i] = (char)i;
    p[len - 1] = 1;
}

static int child_map(void)
{
    size_t len = 1500UL << 20;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 10;
    touch(m, len);
    char *p = malloc(len);
    if (!p)
        return 11;
    touch(p, len);
    void *v[1000];
    for (int i = 0; i < 1000; i++) {
        v[i] = malloc((size_t)(i % 50) * 1000 + 16);
        if (!v[i])
            return 12;
        memset(v[i], i, 16);
    }
    void *mid = malloc(1 << 20);
    if (!mid)
        return 13;
    memset(mid, 1, 1 << 20);
    free(mid);
    for (int i = 0; i < 1000; i++)
        free(v[i]);
    free(p);
    munmap(m, len);
    return 0;
}

/* Small blocks, linked through their first word, until malloc fails;
 * returns how many, with errno as malloc left it in *err. */
static size_t fill(void **head, size_t size, size_t max, int *err)
{
    size_t n = 0;
    errno = 0;
    while (n < max) {
        void **b = malloc(size);
        if (!b) {
            *err = errno;
            return n;
        }
        b[0] = *head;
        *head = b;
        n++;
    }
    *err = 0;
    return n;
}

static void release(void **head)
{
    while (*head) {
        void **b = *head;
        *head = b[0];
        free(b);
    }
}

static int child_exhaust(void)
{
    errno = 0;
    void *huge = malloc(2UL << 30);
    if (huge || errno != ENOMEM) {
        free(huge);
        return 10;
    }
    void *big = malloc(128UL << 20);
    if (!big)
        return 11;
    touch(big, 128UL << 20);
    free(big);
    void *head = NULL;
    int err = 0;
    size_t n = fill(&head, 1000, (size_t)4 << 20, &err);
    if (err != ENOMEM)
        return 12;
    /* most of the 512 MiB limit goes to the blocks (1 KiB objects) */
    if (n < (320UL << 20) / 1024)
        return 13;
    errno = 0;
    void *more = malloc(64UL << 20);
    if (more || errno != ENOMEM) {
        free(more);
        return 14;
    }
    release(&head);
    size_t again = fill(&head, 1000, n / 2, &err);
    if (again != n / 2)
        return 15;
    void *mid = malloc(1 << 20);
    if (!mid)
        return 16;
    memset(mid, 2, 1 << 20);
    free(mid);
    release(&head);
    return 0;
}

/* Blocks of size until malloc fails (at most max bytes), linked through
 * their first word: 0, or 20 + what failed. */
static int fill_all(void **head, size_t size, size_t max)
{
    int err = 0;
    size_t n = fill(head, size, max / size, &err);
    if (err != ENOMEM) /* the limit must be what stopped it */
        return 21;
    if (n * size < (256UL << 20)) /* most of the 1 GiB went to blocks */
        return 22;
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* After the fill and the free: 256 MiB by malloc or by mmap, at once or
 * (wait) within 30 s.  0, or 30 + what failed. */
static int child_again(size_t size, int use_mmap, int wait)
{
    void *head = NULL;
    int r = fill_all(&head, size, 2UL << 30);
    if (r)
        return r;
    release(&head);
    size_t len = 256UL << 20;
    if (!use_mmap) {
        char *p = malloc(len);
        if (!p)
            return 31;
        touch(p, len);
        free(p);
        return 0;
    }
    const char *decay = getenv("KSLAB_DECAY_MS");
    if (wait && decay && !strcmp(decay, "never"))
        malloc_trim(0); /* nothing goes back by time then */
    for (int t = 0;; t++) {
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) {
            touch(m, len);
            munmap(m, len);
            if (getenv("ASLIMIT_SAY")) /* for a side-by-side table */
                fprintf(stderr, "mapped after %d ms\n", t * 50);
            return 0;
        }
        if (!wait || t >= 600)
            return 32;
        sleep_ms(50);
    }
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        size_t size;
    } sizes[] = {{"small", 1000}, {"mid", 100UL << 10}, {"huge", 3UL << 20}};
    for (int i = 0; argc > 1 && i < 3; i++) {
        char name[32];
        int huge = sizes[i].size > (2UL << 20);
        snprintf(name, sizeof name, "refill-%s", sizes[i].name);
        if (!strcmp(argv[1], name))
            return child_again(sizes[i].size, 0, 0);
        snprintf(name, sizeof name, "map-%s", sizes[i].name);
        if (!strcmp(argv[1], name))
            return child_again(sizes[i].size, 1, !huge);
    }
    if (argc > 1 && !strcmp(argv[1], "map"))
        return child_map();
    if (argc > 1 && !strcmp(argv[1], "exhaust"))
        return child_exhaust();
    return 2;
}
