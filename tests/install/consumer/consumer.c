/* A user program linked with -lkslab: its malloc is kslab's (ksize() knows
 * the block), and the slab API is there too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kslab/kslab.h>

int main(void)
{
    char *p = malloc(100);
    if (!p || ksize(p) < 100) {
        fprintf(stderr, "malloc is not kslab's\n");
        return 1;
    }
    strcpy(p, "hello");
    free(p);
    kmem_cache_t *c = kmem_cache_create("consumer", 48, 0, 0, NULL, NULL);
    void *o = kmem_cache_alloc(c, GFP_KERNEL);
    kmem_cache_free(c, o);
    kmem_cache_destroy(c);
    puts("consumer ok");
    return 0;
}
