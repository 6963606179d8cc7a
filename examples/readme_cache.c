/* readme_cache.c: a slab cache with a constructor, kmalloc and slabinfo. */
#include <stdio.h>
#include <string.h>

#include <kslab/slab.h>

struct conn {
    int fd;
    char state[60];
};

/* Runs when a slab is grown, not at every allocation: a freed object
 * keeps its constructed state (2.4's contract). */
static void conn_ctor(void *obj, kmem_cache_t *cache, unsigned long flags)
{
    struct conn *c = obj;
    (void)cache;
    if (flags & SLAB_CTOR_CONSTRUCTOR) {
        c->fd = -1;
        strcpy(c->state, "idle");
    }
}

int main(int argc, char **argv)
{
    if (argc > 1) { /* every example answers --help */
        puts("usage: readme_cache (no arguments)");
        return strcmp(argv[1], "--help") ? 2 : 0;
    }
    kmem_cache_t *cache = kmem_cache_create(
        "conn", sizeof(struct conn), 0, SLAB_HWCACHE_ALIGN, conn_ctor, NULL);
    struct conn *c = kmem_cache_alloc(cache, GFP_KERNEL);
    printf("new conn: fd=%d state=%s\n", c->fd, c->state);
    kmem_cache_free(cache, c);

    char *buf = kmalloc(100, GFP_KERNEL); /* from the size-128 cache */
    printf("kmalloc(100): ksize=%zu\n", ksize(buf));
    kfree(buf);

    kmem_slabinfo(stdout); /* /proc/slabinfo 1.1: "conn" is one line */
    return kmem_cache_destroy(cache); /* 0: every object was freed */
}
