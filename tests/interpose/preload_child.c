/*
 * tests/interpose/preload_child.c — a program that does not link kslab:
 * test_options.c runs it with libkslab-preload.so preloaded.  It allocates
 * small and large blocks and frees them.
 */
#include <stdlib.h>
#include <string.h>

int main(void)
{
    void *v[64];
    for (int i = 0; i < 64; i++) {
        v[i] = malloc((size_t)i * 61 + 1);
        if (!v[i])
            return 1;
        memset(v[i], i, (size_t)i * 61 + 1);
    }
    for (int i = 0; i < 64; i++)
        free(v[i]);
    void *big = malloc(3 << 20);
    if (!big)
        return 1;
    free(big);
    return 0;
}
