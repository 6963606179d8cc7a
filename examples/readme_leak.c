/* readme_leak.c: a program with a leak, to run under KSLAB_DEBUG=leaks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *make_greeting(const char *name)
{
    char *s = malloc(64);
    if (s)
        snprintf(s, 64, "hello, %s", name);
    return s;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        puts("usage: readme_leak [NAME]  (leaks one 64-byte block)");
        return 0;
    }
    char *g = make_greeting(argc > 1 ? argv[1] : "world");
    puts(g);
    g = NULL; /* the only pointer to the block is gone: a leak */
    return 0;
}
