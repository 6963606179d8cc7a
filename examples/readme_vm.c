/* readme_vm.c: an emulated address space: a mapping, a fault, fork + COW. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <kslab/vm.h>

int main(int argc, char **argv)
{
    if (argc > 1) { /* every example answers --help */
        puts("usage: readme_vm (no arguments)");
        return strcmp(argv[1], "--help") ? 2 : 0;
    }
    struct mm_struct *mm = mm_alloc(); /* a 3 GiB user address space */
    unsigned long addr =
        do_mmap(mm, -1, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, 0);
    if (!mm || IS_ERR_VALUE(addr))
        return 1;

    /* mm_host() is where user address addr lives in this process: the
     * store takes a real SIGSEGV, kslab runs handle_mm_fault(), which
     * gives the page a zeroed frame, and the store is retried. */
    char *p = mm_host(mm, addr);
    strcpy(p, "parent");

    struct mm_struct *child = mm_fork(mm); /* pages shared read-only */
    strcpy(mm_host(child, addr), "child"); /* COW: the child copies */
    printf("parent reads \"%s\", child reads \"%s\"\n", p,
           (char *)mm_host(child, addr));

    struct mm_stat st;
    mm_get_stat(child, &st);
    printf("child: rss=%lu pages, %lu minor faults, %lu COW\n", st.rss,
           st.min_flt, st.cow_flt);
    mm_dump_maps(mm, stdout); /* /proc/PID/maps */
    mmput(child);
    mmput(mm);
    return 0;
}
