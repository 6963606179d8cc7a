/* readme_swap.c: user memory smaller than what is written: swap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kslab/vm.h>

int main(int argc, char **argv)
{
    if (argc > 1) { /* every example answers --help */
        puts("usage: readme_swap (no arguments; swap file in $TMPDIR)");
        return strcmp(argv[1], "--help") ? 2 : 0;
    }
    char path[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/readme_swap.%d", tmp ? tmp : "/tmp",
             (int)getpid());
    if (mkswap(path, 1024) || sys_swapon(path, 0)) /* a 4 MiB swap area */
        return 1;
    vm_set_ram_pages(64); /* 256 KiB of user memory */

    struct mm_struct *mm = mm_alloc();
    unsigned long len = 256 * PAGE_SIZE; /* 1 MiB: four times RAM */
    unsigned long a = do_mmap(mm, -1, 0, len, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, 0);
    if (!mm || IS_ERR_VALUE(a))
        return 1;
    for (unsigned long off = 0; off < len; off += PAGE_SIZE)
        *(unsigned long *)mm_host(mm, a + off) = off; /* reclaim swaps out */
    unsigned long bad = 0;
    for (unsigned long off = 0; off < len; off += PAGE_SIZE)
        bad += *(unsigned long *)mm_host(mm, a + off) != off; /* swap in */

    struct mm_stat st;
    mm_get_stat(mm, &st);
    printf("%lu wrong values; swapped out %lu, in %lu, major faults %lu\n", bad,
           st.swap_out, st.swap_in, st.maj_flt);
    vm_meminfo(stdout); /* /proc/meminfo: SwapTotal, SwapFree, ... */
    mmput(mm);
    int r = sys_swapoff(path);
    unlink(path);
    return bad || r || st.swap_out == 0;
}
