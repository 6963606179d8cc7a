/* readme_leak.c: a block whose only pointer is lost, for KSLAB_DEBUG=leaks */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *make_greeting(const char *name)
{
    char *s = malloc(64);
    snprintf(s, 64, "hello, %s", name);
    return s;
}

int main(int argc, char **argv)
{
    if (argc > 1) { /* every example answers --help */
        puts("usage: readme_leak (no arguments; leaks one 64-byte block)");
        return strcmp(argv[1], "--help") ? 2 : 0;
    }
    /* cppcheck-suppress leakNoVarFunctionCall ; the leak is the point */
    puts(make_greeting("world")); /* the pointer is dropped: a leak */
    return 0;
}
