/*
 * examples/vmdemo.c — a tour of the emulated address spaces: create an
 * mm, map anonymous private and shared memory and grow the brk, write
 * through the host window (real faults resolved by kslab), fork it, write
 * on both sides, and print both /proc/PID/maps views, what each side sees
 * and the fault counters.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <kslab/vm.h>

static void show(const char *name, struct mm_struct *mm, unsigned long priv,
                 unsigned long shared, unsigned long heap)
{
    struct mm_stat st;
    mm_get_stat(mm, &st);
    printf("--- %s: maps\n", name);
    mm_dump_maps(mm, stdout);
    printf("--- %s: private[0]=\"%s\" shared[0]=\"%s\" heap[0]=\"%s\"\n", name,
           (char *)mm_host(mm, priv), (char *)mm_host(mm, shared),
           (char *)mm_host(mm, heap));
    printf("--- %s: rss=%lu min_flt=%lu maj_flt=%lu cow_flt=%lu "
           "zero_flt=%lu\n",
           name, st.rss, st.min_flt, st.maj_flt, st.cow_flt, st.zero_flt);
}

int main(void)
{
    struct mm_struct *parent = mm_alloc();
    if (!parent) {
        fprintf(stderr, "mm_alloc failed\n");
        return 1;
    }
    unsigned long priv =
        do_mmap(parent, -1, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, 0);
    unsigned long shared =
        do_mmap(parent, -1, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS, 0);
    unsigned long heap = sys_brk(parent, 0);
    sys_brk(parent, heap + 3 * PAGE_SIZE);

    strcpy(mm_host(parent, priv), "parent's private page");
    strcpy(mm_host(parent, shared), "written by parent");
    strcpy(mm_host(parent, heap), "parent heap");
    /* a read of an untouched page maps the ZERO_PAGE */
    volatile char c = *(char *)mm_host(parent, priv + 2 * PAGE_SIZE);
    (void)c;

    struct mm_struct *child = mm_fork(parent);
    strcpy(mm_host(child, priv), "child's copy (COW)");
    strcpy(mm_host(child, shared), "written by child");
    strcpy(mm_host(parent, heap), "parent heap, after fork");

    show("parent", parent, priv, shared, heap);
    show("child", child, priv, shared, heap);
    mmput(child);
    mmput(parent);
    return 0;
}
